"""The aggregates ledger's compaction: sealed windows rolled up, reads that stay bounded, and
exactly-once under twin rollers, crashes mid roll-up and retries across a period close."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meterline.adapters.memory import MemoryPublisher, StreamingMemoryStore
from meterline.periods import Period
from meterline.pipeline.aggregate import StreamRecord
from meterline.pipeline.cell import Cell
from meterline.pipeline.invoices import all_amendments
from meterline.pipeline.ledger import SEAL_AFTER_PARTIALS, PeriodLedger, is_partial
from meterline.ports import Item
from meterline.records import AcceptedUsage
from meterline.topology import AGGREGATES_TABLE, USAGE_TABLE
from meterline.usage import UsageBook

from .test_cell import CATALOG, deliver, make_events, stream_vs_batch

NOVEMBER = Period(2026, 11)
CLOSE_ALL = datetime(2027, 1, 1, tzinfo=UTC)


class ReadCounter:
    """Counts the items a store hands back, to see what one call of a job reads."""

    def __init__(self, store: StreamingMemoryStore) -> None:
        self.items = 0
        self.store = store
        self.real_get, self.real_query = store.get, store.query

    def get(self, table: str, pk: str, sk: str) -> Item | None:
        item = self.real_get(table, pk, sk)
        self.items += item is not None
        return item

    def query(self, table: str, pk: str, sk_prefix: str = "") -> list[Item]:
        found = self.real_query(table, pk, sk_prefix)
        self.items += len(found)
        return found


def rate_reads(cell: Cell, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The items each rate call reads, as the cell pumps its streams."""
    counter = ReadCounter(cell.store)
    monkeypatch.setattr(cell.store, "get", counter.get)
    monkeypatch.setattr(cell.store, "query", counter.query)
    reads: list[int] = []
    real_run = cell.charges.run

    def counted(items: list[Item], now: datetime | None = None) -> int:
        before = counter.items
        published = real_run(items, now)
        reads.append(counter.items - before)
        return published

    monkeypatch.setattr(cell.charges, "run", counted)
    return reads


def small_batches(cell: Cell, lines: list[bytes]) -> None:
    """Every meter batch aggregated and rated on its own: one partial per batch."""
    deliver(cell, lines, first_offset=0, batch=10)


def test_rating_reads_no_more_when_the_period_has_run_four_times_as_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN November usage aggregated one small batch at a time (one partial per batch), for a
    # short and for a four times longer run
    lines = [line for line in make_events(seed=31, count=6000) if b'"time":"2026-11' in line]
    short, long = Cell(CATALOG, MemoryPublisher()), Cell(CATALOG, MemoryPublisher())
    short_reads, long_reads = rate_reads(short, monkeypatch), rate_reads(long, monkeypatch)
    # WHEN both are rated as partials arrive
    small_batches(short, lines[: len(lines) // 4])
    small_batches(long, lines)
    # THEN the long run's rate calls read no more items than the short run's worst one (the
    # partials after the last rollup plus a rollup per bucket), though it has four times the partials
    partials = [i for i in long.store.scan(AGGREGATES_TABLE.name) if is_partial(i)]
    assert len(partials) > 8 * SEAL_AFTER_PARTIALS
    assert max(long_reads) <= max(short_reads) + 16  # a chunk more per bucket at most
    assert max(long_reads) < len(partials) // 4
    # AND the windows were sealed and rolled up as they filled
    head = PeriodLedger(CATALOG, long.store, NOVEMBER).head()
    assert (
        head.window >= 7
        and len(PeriodLedger(CATALOG, long.store, NOVEMBER).open_partials()) < SEAL_AFTER_PARTIALS
    )
    # AND the invoices still equal `meterline rate`
    long.close(CLOSE_ALL)
    assert stream_vs_batch(CATALOG, long.store, lines, str(NOVEMBER), str(NOVEMBER)) == []


def test_two_rollers_at_once_and_a_roller_that_crashed_leave_the_same_usage() -> None:
    # GIVEN a period with three sealed windows of partials
    cell = Cell(CATALOG, MemoryPublisher())
    cell.charges.run = lambda items, now=None: 0  # type: ignore[method-assign]  # no rate: seal by hand
    lines = [line for line in make_events(seed=32, count=900) if b'"time":"2026-11' in line]
    ledger = PeriodLedger(CATALOG, cell.store, NOVEMBER)
    for third in range(3):
        part = lines[third * len(lines) // 3 : (third + 1) * len(lines) // 3]
        deliver(cell, part, first_offset=third * 1000, batch=50)
        ledger.seal(datetime(2026, 11, 20, tzinfo=UTC))
    whole = ledger.book()
    # WHEN one roller writes its rollup chunks and crashes before moving the head
    real_transact = cell.store.transact

    def crash(writes: object) -> None:
        raise ConnectionError("the roller died before its head write")

    cell.store.transact = crash  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        ledger.roll_up()
    cell.store.transact = real_transact  # type: ignore[method-assign]
    # AND two rollers then start from the same head, the second finishing first
    assert cell.store.get(AGGREGATES_TABLE.name, "period|2026-11", "head") is None
    first = PeriodLedger(CATALOG, cell.store, NOVEMBER)
    stale = [first.head()]
    real_head = first.head
    first.head = lambda: stale.pop() if stale else real_head()  # type: ignore[method-assign]
    second_folded = PeriodLedger(CATALOG, cell.store, NOVEMBER).roll_up()
    first_folded = first.roll_up()
    # THEN the head moved once, over all three windows, and the usage read back is the whole usage
    assert second_folded and first_folded == set() and stale == []
    assert ledger.head().window == 2
    assert ledger.open_partials() == []
    assert quantities(ledger.book()) == quantities(whole)


def quantities(book: UsageBook) -> dict[tuple[str, Period], dict[object, object]]:
    return {(t, p): dict(book.quantities(CATALOG, t, p)) for t, p in book.states}


def test_a_retried_batch_finds_its_markers_after_its_period_closed() -> None:
    # GIVEN an October batch aggregated once
    store_cell = Cell(CATALOG, MemoryPublisher())
    lines = [line for line in make_events(seed=33, count=300) if b'"time":"2026-10' in line]
    deliver(store_cell, lines, first_offset=0, batch=len(lines))
    usage = sorted(store_cell.store.streams[USAGE_TABLE.name], key=lambda e: int(e.sequence))
    batch = [StreamRecord(e.sequence, AcceptedUsage.from_item(e.item)) for e in usage]
    # WHEN October closes and Lambda then retries the same batch (its success was never recorded)
    store_cell.closer.close(Period(2026, 10), datetime(2026, 11, 2, tzinfo=UTC))
    applied = store_cell.aggregator.run(batch)
    # THEN nothing is applied again: no November partial, no amendment of October
    assert applied == 0
    assert PeriodLedger(CATALOG, store_cell.store, NOVEMBER).open_partials() == []
    store_cell.close(CLOSE_ALL)
    assert stream_vs_batch(CATALOG, store_cell.store, lines) == []
    assert all_amendments(store_cell.store) == []
