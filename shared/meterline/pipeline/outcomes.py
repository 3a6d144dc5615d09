"""The outcomes ledger: what became of each delivered record that was not accepted (a duplicate or a
reject, with its reason), under the record's delivery: by topic and partition, then offset. A record
that failed and will be delivered again has a ``retrying`` item counting its attempts, which no
count takes for an outcome. With the usage ledger, received = accepted + duplicates + rejected."""

from __future__ import annotations

from collections.abc import Iterator

from meterline.ports import Item, Store
from meterline.records import Delivery, key_part
from meterline.topology import OUTCOMES_TABLE

TABLE = OUTCOMES_TABLE.name
RETRYING = "retrying"
DETAIL_CHARACTERS = 500
"""How much of a rejection's detail the outcome (and the dead letter) carry."""


def outcome_key(delivery: Delivery) -> tuple[str, str]:
    return f"{key_part(delivery.topic)}|{delivery.partition}", f"{delivery.offset:020d}"


def printable(detail: str) -> str:
    """The detail cut to DETAIL_CHARACTERS, any lone surrogate escaped: stores and brokers take
    only Unicode text, and a detail may quote the bad input itself."""
    return detail[:DETAIL_CHARACTERS].encode("utf-8", "backslashreplace").decode("utf-8")


class OutcomesLedger:
    def __init__(self, store: Store) -> None:
        self.store = store

    def record(self, delivery: Delivery, outcome: str, reason: str, detail: str, attempts: int = 0) -> None:
        pk, sk = outcome_key(delivery)
        item: Item = {"pk": pk, "sk": sk, "outcome": outcome, "reason": reason, "detail": printable(detail)}
        if attempts:
            item["attempts"] = attempts
        self.store.put(TABLE, item)

    def get(self, delivery: Delivery) -> Item | None:
        return self.store.get(TABLE, *outcome_key(delivery))

    def count_attempt(self, delivery: Delivery, detail: str) -> int:
        """Count a failed attempt at the record; return the attempts so far."""
        stored = self.get(delivery)
        attempts = int(stored.get("attempts", 0)) + 1 if stored is not None else 1
        self.record(delivery, RETRYING, "", detail, attempts)
        return attempts

    def items(self) -> Iterator[Item]:
        return self.store.scan(TABLE)
