"""The usage ledger: one item per accepted event, under a digest of its (subject, source, id)
(``records.usage_key``): the permanent dedup record, the event's measurements, its content's
fingerprint and the delivery that created it (``at``). Written once, with a conditional create."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from meterline.events import EventKey
from meterline.ports import Item, Store
from meterline.records import usage_key
from meterline.topology import USAGE_TABLE

TABLE = USAGE_TABLE.name


class Standing(NamedTuple):
    """What the ledger holds for an event: the delivery that created its item, and its content's
    fingerprint (the same content sent again is a duplicate, other content a conflict)."""

    delivery: str
    fingerprint: bytes


class UsageLedger:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, item: Item) -> Standing | None:
        """Create an accepted event's item (``records.usage_item``) unless its event stands
        already; what stands when it does."""
        stored = self.store.put_new(TABLE, item)
        return None if stored is None else _standing(stored)

    def item(self, key: EventKey) -> Item | None:
        return self.store.get(TABLE, *usage_key(key))

    def standing(self, key: EventKey) -> Standing | None:
        stored = self.item(key)
        return None if stored is None else _standing(stored)

    def items(self) -> Iterator[Item]:
        return self.store.scan(TABLE)


def _standing(item: Item) -> Standing:
    return Standing(str(item.get("at")), bytes(item.get("fp", b"")))  # type: ignore[arg-type]
