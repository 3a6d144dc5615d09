"""The aggregates ledger of one billing period: partial states in sealed windows, and their rollups.

Everything a billing period holds lives in ONE partition (``period|<YYYY-MM>``), so every
transaction touches one partition, which is all Azure Tables can commit atomically:

- ``partial|<window>|<first>`` — usage folded by one aggregate transaction (mergeable states,
  zlib-packed), filed under the window that was open when it committed.
- ``batch|<batch first>|<first>`` — the marker written with it: which records it applied.
- ``fence|<window>`` — the window is sealed: the aggregate transaction checks the fence of its
  window is absent, so no partial can join a window after its fence exists. Sealing the last
  window ``final`` closes the period: later usage of it is billed in the next period.
- ``rollup|<bucket>|<window>|<base>|<chunk>`` — for one tenant bucket, every partial of every
  window up to ``window`` merged (the previous rollup of the bucket, ``base``, plus the sealed
  windows after it). Its content follows from sealed, immutable partials, so two rollers of the
  same windows write the same chunks; ``base`` in the key keeps rollers from different heads apart.
- ``head`` — which windows are rolled up, and the newest rollup of each bucket; advanced with a
  conditional write, so it only moves forward.

A reader needs the head, the rollups of the buckets it wants and the partials of the windows after
the head: at most a sealing threshold's worth, however long the period has run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import orjson

from meterline.catalog import Catalog
from meterline.periods import Period
from meterline.ports import ConditionFailedError, Item, PutIf, Store
from meterline.records import BUCKETS, bucket_of, pack_book, unpack_book
from meterline.topology import AGGREGATES_TABLE
from meterline.usage import UsageBook

TABLE = AGGREGATES_TABLE.name
MAX_CHUNK_BYTES = 350_000
"""Below DynamoDB's 400 KB item limit, with room for keys and attributes."""
SEAL_AFTER_PARTIALS = 32
"""Open partials a period may gather before its window is sealed and rolled up."""


def period_pk(period: Period) -> str:
    return f"period|{period}"


def is_partial(item: Item) -> bool:
    return str(item["pk"]).startswith("period|") and str(item["sk"]).startswith("partial|")


def billing_period_of(item: Item) -> Period:
    """The period whose ledger holds the item (the period it is billed in)."""
    return Period.parse(str(item["pk"]).split("|", 1)[1])


def sequence_key(sequence: str) -> str:
    return f"{int(sequence):040d}"


def fence_sk(window: int) -> str:
    return f"fence|{window:06d}"


def partial_sk(window: int, first: str) -> str:
    return f"partial|{window:06d}|{sequence_key(first)}"


def marker_prefix(batch: str) -> str:
    return f"batch|{sequence_key(batch)}|"


def rollup_prefix(bucket: int, window: int, base: int) -> str:
    return f"rollup|{bucket:02d}|{window:06d}|{base + 1:06d}|"


@dataclass(frozen=True, slots=True)
class Head:
    window: int
    """Every window up to this one is rolled up (-1: none yet)."""
    rollups: dict[int, tuple[int, int, int]]
    """bucket → (window, base, chunks) of its newest rollup"""
    final: bool = False
    """The window rolled up last was sealed for good: the period is closed and complete."""

    @classmethod
    def of(cls, item: Item | None) -> Head:
        if item is None:
            return cls(-1, {})
        rollups = orjson.loads(item["rollups"])  # type: ignore[arg-type]
        return cls(
            int(item["window"]),
            {int(b): (w, base, n) for b, (w, base, n) in rollups.items()},
            item.get("final") is True,
        )

    def to_item(self, period: Period) -> Item:
        rollups = {f"{b:02d}": list(r) for b, r in sorted(self.rollups.items())}
        return {
            "pk": period_pk(period),
            "sk": "head",
            "window": self.window,
            "rollups": orjson.dumps(rollups),
            "final": self.final,
        }


@dataclass(frozen=True, slots=True)
class Window:
    number: int
    sealed: bool
    final: bool


class PeriodLedger:
    """Reads and compacts the aggregates of one billing period."""

    def __init__(self, catalog: Catalog, store: Store, period: Period) -> None:
        self.catalog = catalog
        self.store = store
        self.period = period
        self.pk = period_pk(period)

    # windows ---------------------------------------------------------------------------------

    def head(self) -> Head:
        return Head.of(self.store.get(TABLE, self.pk, "head"))

    def window(self, number: int) -> Window:
        fence = self.store.get(TABLE, self.pk, fence_sk(number))
        return Window(number, fence is not None, fence is not None and fence.get("final") is True)

    def windows_after(self, head: Head) -> Iterator[Window]:
        """The windows after the head, up to and including the open one (or the final one)."""
        if head.final:
            return
        number = head.window + 1
        while True:
            window = self.window(number)
            yield window
            if not window.sealed or window.final:
                return
            number += 1

    def open_window(self) -> int | None:
        """The window new partials join, or None once the period is closed."""
        head = self.head()
        if head.final:
            return None
        for window in self.windows_after(head):
            if window.final:
                return None
            if not window.sealed:
                return window.number
        raise AssertionError("windows_after ends at an open or final window")

    def seal(self, now: datetime, final: bool = False) -> None:
        """Seal the open window (``final``: and close the period); a no-op on a closed period."""
        while (number := self.open_window()) is not None:
            fence: Item = {
                "pk": self.pk,
                "sk": fence_sk(number),
                "sealed_at": now.isoformat(),
                "final": final,
            }
            stored = self.store.put_new(TABLE, fence)
            if stored is None or not final:
                return  # sealed by us, or (not final) by a twin: either way this window is sealed
            # a twin sealed this window but not for good: the period is still open after it

    # reading ---------------------------------------------------------------------------------

    def partials(self, window: int) -> list[Item]:
        return self.store.query(TABLE, self.pk, f"partial|{window:06d}|")

    def open_partials(self, head: Head | None = None) -> list[Item]:
        """Every partial not rolled up yet."""
        head = head or self.head()
        return [item for window in self.windows_after(head) for item in self.partials(window.number)]

    def book(
        self,
        buckets: Iterable[int] = range(BUCKETS),
        head: Head | None = None,
        partials: list[Item] | None = None,
    ) -> UsageBook:
        """The period's usage (of the given tenant buckets; open partials whole): rollups plus
        the partials after them (``partials``: as already read after ``head``). Complete once the
        period is sealed for good and rolled up."""
        head = head or self.head()
        book = self.rolled_up(head, buckets)
        for item in self.open_partials(head) if partials is None else partials:
            book.merge(unpack_book(self.catalog, _blob(item)))
        return book

    def rolled_up(self, head: Head, buckets: Iterable[int]) -> UsageBook:
        book = UsageBook()
        for bucket in sorted(set(buckets)):
            if bucket in head.rollups:
                window, base, _ = head.rollups[bucket]
                for chunk in self.store.query(TABLE, self.pk, rollup_prefix(bucket, window, base)):
                    book.merge(unpack_book(self.catalog, _blob(chunk)))
        return book

    # compaction ------------------------------------------------------------------------------

    def roll_up(self, attempts: int = 8) -> set[tuple[str, Period]]:
        """Fold every sealed window after the head into the rollups and advance the head; return
        the (tenant, period) pairs folded in. Safe to run twice, or twice at once."""
        for _ in range(attempts):
            head = self.head()
            sealed = [w for w in self.windows_after(head) if w.sealed]
            if not sealed:
                return set()
            target = sealed[-1].number
            fresh: dict[int, UsageBook] = {}
            folded: set[tuple[str, Period]] = set()
            for window in sealed:
                for item in self.partials(window.number):
                    for (tenant, period), states in unpack_book(self.catalog, _blob(item)).states.items():
                        part = UsageBook()
                        part.states[(tenant, period)] = states
                        fresh.setdefault(bucket_of(tenant), UsageBook()).merge(part)
                        folded.add((tenant, period))
            rollups = dict(head.rollups)
            for bucket, additions in sorted(fresh.items()):
                book = self.rolled_up(head, [bucket])
                book.merge(additions)
                chunks = self.write_rollup(bucket, target, head.window, book)
                rollups[bucket] = (target, head.window, chunks)
            advanced = Head(target, rollups, sealed[-1].final)
            expected = None if head.window < 0 else head.window
            try:
                self.store.transact([PutIf(TABLE, advanced.to_item(self.period), "window", expected)])
            except ConditionFailedError:
                continue  # a twin advanced the head first: fold what is left after its head
            return folded
        raise ConditionFailedError(0, f"the head of {self.period} kept moving during {attempts} roll-ups")

    def write_rollup(self, bucket: int, window: int, base: int, book: UsageBook) -> int:
        prefix = rollup_prefix(bucket, window, base)
        chunks = _chunks(book)
        for index, blob in enumerate(chunks):
            self.store.put(TABLE, {"pk": self.pk, "sk": f"{prefix}{index:04d}", "book": blob})
        return len(chunks)


def _blob(item: Item) -> bytes:
    return bytes(item["book"])  # type: ignore[arg-type]


def _chunks(book: UsageBook) -> list[bytes]:
    """The book packed into blobs under the item size limit, split between tenant-periods."""
    whole = pack_book(book)
    if len(whole) <= MAX_CHUNK_BYTES or len(book.states) == 1:
        if len(whole) > MAX_CHUNK_BYTES:
            raise ValueError(
                f"one tenant's usage for a period packs to {len(whole)} bytes, over an item's limit"
            )
        return [whole]
    keys = sorted(book.states)
    halves = keys[: len(keys) // 2], keys[len(keys) // 2 :]
    blobs: list[bytes] = []
    for half in halves:
        part = UsageBook()
        part.states = {key: book.states[key] for key in half}
        blobs.extend(_chunks(part))
    return blobs
