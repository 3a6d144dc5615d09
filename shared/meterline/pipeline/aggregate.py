"""Aggregate: fold newly accepted usage into partial states, exactly once per stream record.

A batch of usage-ledger stream records (one shard, ascending sequence numbers) becomes one
partial state per billing period it touches (almost always one), each written in ONE
single-partition transaction (see ``ledger``) together with a marker: filed under the batch's
first sequence number and the partial's first record, saying up to which record and for which
usage periods it applied. Lambda retries a failed stream batch from the same first record, so a
retry finds the markers of its batch and skips what they cover (a longer retry goes on after
them); a crash before a commit leaves nothing of it behind. The marker needs no shard id, which
Lambda's stream events do not carry.

Each transaction also checks that the fence of the window it files its partial under is absent:
once a window is sealed (for a rollup, or for good when its period closes) nothing joins it.
Usage of a period that is closed is billed in the first open period after it: its partial goes
to that period's ledger, its states still labelled with their own period, so a close and an
aggregation can never both claim the same usage.

A record that cannot be applied never blocks its shard: when a batch fails on something other than
the store, each record is tried alone (``processing.AggregateProcessor``), and those that fail
alone (they cannot be read, folded, packed, or their state alone is larger than a partial may be)
are set aside: a ``dead`` item names each (its sequence, its usage item and delivery, the error)
and the batch goes on without them.
Whether a record fails alone depends on nothing but the record, so a retried batch sets aside the
same records again (the same item, written again) and no marker needs to know of them. Meter
rejects such records before they are accepted (``records.read_usage``); what gets here was
accepted by an older meter or another catalog, and is counted as ``dead_lettered`` for an alarm:
its usage is missing from invoices until someone replays it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter

from meterline import terms
from meterline.catalog import Catalog
from meterline.heap import collector_paused
from meterline.instants import spellings
from meterline.periods import Period
from meterline.ports import ConditionFailedError, Expect, PutNew, Store, Write
from meterline.records import AcceptedUsage, event_digest, pack_book, record_all
from meterline.topology import AGGREGATES_TABLE
from meterline.usage import UsageBook

from .ledger import (
    MAX_CHUNK_BYTES,
    Marker,
    PeriodLedger,
    dead_item,
    fence_sk,
    markers,
    note_usage,
    partial_item,
    period_pk,
)
from .outcomes import printable

TABLE = AGGREGATES_TABLE.name


@dataclass(frozen=True, slots=True)
class StreamRecord:
    sequence: str
    """A decimal string, increasing within the shard."""
    usage: AcceptedUsage


@dataclass(frozen=True, slots=True)
class Slot:
    """Where usage of a period is filed now: the ledger of the period that bills it, and its open window."""

    billed_in: Period
    window: int


class Aggregator:
    def __init__(self, catalog: Catalog, store: Store) -> None:
        self.catalog = catalog
        self.store = store
        self.cutter = terms.cutter(catalog)
        """A tenant's month is kept in segments cut at its subscriptions' boundaries."""
        self.slots: dict[Period, Slot] = {}
        self.indexed: set[Period] = set()
        self.applied = 0
        self.dead_lettered = 0
        """Records applied and set aside so far (counters for the handlers' metrics)."""

    def run(self, records: Sequence[StreamRecord], attempts: int = 8) -> int:
        """Apply the records no marker of this batch covers yet; return how many were applied. A
        failure raises (``processing.AggregateProcessor`` decides what becomes of the batch), but
        for a lost race, which is tried again."""
        if not records:
            return 0
        with collector_paused():  # usage folded into states and packed: trees, no cycles
            return self._run(records, attempts)

    def _run(self, records: Sequence[StreamRecord], attempts: int) -> int:
        batch = records[0].sequence
        remaining = self.unapplied(batch, records)
        applied = conflicts = 0
        while remaining:
            try:
                committed = self.commit(batch, remaining)
            except ConditionFailedError:
                # a window was sealed or a period closed, or a twin invocation committed first
                conflicts += 1
                if conflicts >= attempts:
                    raise
                self.slots.clear()
                remaining = self.unapplied(batch, remaining)
                continue
            applied += len(committed)
            self.applied += len(committed)
            if len(committed) == len(remaining):  # the usual batch: one ledger, one transaction
                break
            done = {id(record) for record in committed}
            remaining = [record for record in remaining if id(record) not in done]
        return applied

    def unapplied(self, batch: str, records: Sequence[StreamRecord]) -> list[StreamRecord]:
        """The records no marker of this batch covers, looking in every ledger that may have
        billed them (their own period's, and each later one up to where they are billed now)."""
        found: list[Marker] = []
        for billed_in in sorted(self.ledgers_for(_periods(records))):
            found += markers(self.store, billed_in, batch)
        if not found:
            return list(records)
        return [
            record
            for record in records
            if not any(marker.covers(record.sequence, record.usage.period) for marker in found)
        ]

    def ledgers_for(self, periods: Iterable[Period]) -> set[Period]:
        found: set[Period] = set()
        for period in periods:
            candidate = period
            while candidate <= self.slot(period).billed_in:
                found.add(candidate)
                candidate = candidate.next()
        return found

    def slot(self, period: Period) -> Slot:
        slot = self.slots.get(period)
        if slot is None:
            billed_in = period
            while (window := PeriodLedger(self.catalog, self.store, billed_in).open_window()) is None:
                billed_in = billed_in.next()
            slot = self.slots[period] = Slot(billed_in, window)
        return slot

    def commit(self, batch: str, records: Sequence[StreamRecord]) -> list[StreamRecord]:
        """Commit the records of the first ledger they go to (as many as fit one transaction);
        return those committed."""
        first = records[0].usage.period
        slot = self.slot(first)
        periods = list(map(_period_of, records))
        if periods.count(first) == len(periods):  # one object per month: most batches hold one
            group = list(records)
        else:
            group, last, found = [], None, slot
            for record, period in zip(records, periods, strict=True):
                if period is not last:
                    last, found = period, self.slot(period)
                if found is slot or found == slot:
                    group.append(record)
        count = len(group)
        while True:
            writes = self.plan(batch, slot, group[:count])
            if writes is not None:
                self.index_period(slot.billed_in)
                self.store.transact(writes)
                return group[:count]
            if count == 1:
                raise ValueError(f"record {group[0].sequence} does not fit a transaction")
            count //= 2

    def book(self, slot: Slot) -> UsageBook:
        """Where the records filed in ``slot`` fold: each month cut at its tenant's subscription
        boundaries, but late usage (of a period before the one billing it) by day. Its period is
        amended under the catalog that issued it, which may cut the month elsewhere (a customer
        since removed, a subscription since moved); days fit any catalog's cut."""

        billed_in = slot.billed_in

        def cut(tenant: str, period: Period) -> tuple[terms.Days, ...]:
            late = period is not billed_in and period < billed_in  # the same period, almost always
            return terms.by_day(period) if late else self.cutter(tenant, period)

        return UsageBook(cut)

    def plan(self, batch: str, slot: Slot, records: Sequence[StreamRecord]) -> list[Write] | None:
        book = self.book(slot)
        usages = list(map(_usage_of, records))
        periods = record_all(book, self.catalog, usages)
        spelling = zip(map(_time_of, usages), map(_stamp_of, usages), strict=True)
        with spellings(spelling):  # the times as the items spell them
            blob = pack_book(book)
        if len(blob) > MAX_CHUNK_BYTES:
            return None
        # a book's keys are (tenant, period): of one period, each tenant once
        tenants = len(book.states) if len(periods) == 1 else len({tenant for tenant, _ in book.states})
        first = records[0].sequence
        marker = Marker(int(first), int(records[-1].sequence), frozenset(str(period) for period in periods))
        return [
            PutNew(TABLE, partial_item(slot.billed_in, slot.window, first, blob, tenants)),
            Expect(TABLE, period_pk(slot.billed_in), fence_sk(slot.window), "sealed_at", None),
            PutNew(TABLE, marker.to_item(slot.billed_in, batch)),
        ]

    def poison(self, records: Sequence[StreamRecord]) -> set[int]:
        """Try each record alone; set aside those that fail, and return their ids."""
        found: set[int] = set()
        for record in records:
            try:
                book = self.book(self.slot(record.usage.period))  # as ``plan`` folds it
                record_all(book, self.catalog, [record.usage])
                size = len(pack_book(book))
                if size > MAX_CHUNK_BYTES:
                    raise ValueError(f"its state alone takes {size:,} bytes, more than a partial may")
            except Exception as error:
                usage = record.usage
                self.set_aside(record.sequence, f"{type(error).__name__}: {error}", usage.key, usage.delivery)
                found.add(id(record))
        return found

    def set_aside(
        self, sequence: str, error: str, key: tuple[str, str, str] | None = None, delivery: str = ""
    ) -> None:
        """File a stream record that cannot be applied under ``dead`` (idempotent: the same record
        gets the same item), and count it."""
        usage_pk = None if key is None else event_digest(key)
        self.store.put(TABLE, dead_item(sequence, printable(delivery), printable(error), usage_pk))
        self.dead_lettered += 1

    def index_period(self, period: Period) -> None:
        """Note which periods have usage (for the closer), outside the transaction: a shared
        item in every transaction would make concurrent shards conflict."""
        if period not in self.indexed:
            note_usage(self.store, period)
            self.indexed.add(period)


_usage_of = attrgetter("usage")
_period_of = attrgetter("usage.period")
_time_of, _stamp_of = attrgetter("time"), attrgetter("stamp")


def _periods(records: Sequence[StreamRecord]) -> set[Period]:
    """The usage periods of the records (one object per month: compared by identity first)."""
    periods: set[Period] = set()
    last = None
    for record in records:
        period = record.usage.period
        if period is not last:
            periods.add(period)
            last = period
    return periods
