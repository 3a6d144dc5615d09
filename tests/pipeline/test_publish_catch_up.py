"""publish's catch-up (the schedule where no stream triggers publish: GCP, Azure) costs what is new
since its last run: a run reads the partials filed since, the open window's, and a few items per
period, however long the month has run; a crash or a twin publisher never skips a partial."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from meterline.adapters.memory import MemoryExchange, MemoryPublisher
from meterline.periods import Period
from meterline.pipeline.cell import Cell
from meterline.pipeline.deployment import Deployment
from meterline.pipeline.ledger import SEAL_AFTER_PARTIALS, is_partial
from meterline.pipeline.meter import DeliveredRecord
from meterline.pipeline.publish import StatementPublisher, published_through
from meterline.ports import Item, Store, Write
from meterline.records import Delivery
from meterline.topology import AGGREGATES_TABLE, USAGE_EVENTS
from tests.pipeline.test_cell import make_events
from tests.pipeline.test_home import CATALOG, CELLS, DECEMBER, assert_equals_rate, split_by_cell

NOW = datetime(2026, 11, 20, tzinfo=UTC)
OCTOBER, NOVEMBER = Period(2026, 10), Period(2026, 11)


class CountingStore:
    """A store counting what it reads: each item a query returns (at least one per query, as a
    request), each get."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.reads = 0

    def get(self, table: str, pk: str, sk: str) -> Item | None:
        self.reads += 1
        return self.inner.get(table, pk, sk)

    def query(self, table: str, pk: str, sk_prefix: str = "") -> list[Item]:
        items = self.inner.query(table, pk, sk_prefix)
        self.reads += max(1, len(items))
        return items

    def scan(self, table: str) -> Iterator[Item]:
        for item in self.inner.scan(table):
            self.reads += 1
            yield item

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CrashingStore:
    """A store crashing once, at its first write of one kind (``put``: a publish mark, ``put_new``:
    a seal, ``transact``: the cursor), before writing it; or calling ``before`` there instead."""

    def __init__(self, inner: Store, at: str, before: Callable[[], None] | None = None) -> None:
        self.inner = inner
        self.at = at
        self.before = before
        self.crashed = False

    def _write(self, kind: str) -> None:
        if kind == self.at and not self.crashed:
            self.crashed = True
            if self.before is None:
                raise RuntimeError(f"publish crashed at its {kind}, after putting statements")
            self.before()

    def put(self, table: str, item: Item) -> None:
        self._write("put")
        self.inner.put(table, item)

    def put_new(self, table: str, item: Item) -> Item | None:
        self._write("put_new")
        return self.inner.put_new(table, item)

    def transact(self, writes: Sequence[Write]) -> None:
        self._write("transact")
        self.inner.transact(writes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


_offsets = iter(range(10**9))


def deliver(cell: Cell, lines: Sequence[bytes]) -> list[Item]:
    """Meter and aggregate the lines in one cell; return the partials written."""
    records = [DeliveredRecord(Delivery(USAGE_EVENTS.name, 0, next(_offsets)), None, line) for line in lines]
    assert not cell.deliver(records).failed
    return cell.aggregate()


def every_statement_key(cell: Cell, publisher: StatementPublisher) -> set[str]:
    """The key of every statement of every partial in the cell's ledgers."""
    return {
        statement.key
        for item in cell.store.scan(AGGREGATES_TABLE.name)
        if is_partial(item)
        for statement in publisher.statements(item)
    }


def run_month(history: int, seed: int) -> tuple[list[int], list[int]]:
    """A cell aggregating 5-event stream batches, ``history`` rounds of 30 events each published by
    a catch-up run; return each run's reads and new partials."""
    cell = Cell(CATALOG, MemoryPublisher(), stream_batch=5, name=CELLS[2])
    counting = CountingStore(cell.store)
    exchange = MemoryExchange()
    publisher = StatementPublisher(CATALOG, counting, exchange, cell.name)
    events = make_events(seed=seed, count=30 * history)
    reads, new = [], []
    for start in range(0, len(events), 30):
        new.append(len(deliver(cell, events[start : start + 30])))
        counting.reads = 0
        publisher.catch_up(NOW)
        reads.append(counting.reads)
    assert set(exchange.objects) == every_statement_key(cell, publisher)
    return reads, new


def test_a_catch_up_run_reads_what_is_new_since_the_last_run_not_the_whole_month() -> None:
    # GIVEN two months of a cell's usage, aggregated in small batches, published after each round
    # WHEN one month runs 4 rounds and another 40 (ten times the partials)
    short_reads, _ = run_month(history=4, seed=21)
    long_reads, long_new = run_month(history=40, seed=21)

    # THEN every partial was published (checked in run_month), and each run read at most the
    # open windows (sealed by publish once they hold SEAL_AFTER_PARTIALS partials) and what is new,
    # with their publish marks, plus a few items per period: bounded by the new partials, not by
    # the month's
    assert sum(long_new) >= 10 * SEAL_AFTER_PARTIALS
    per_period = 8
    for reads, new in zip(long_reads, long_new, strict=True):
        assert reads <= 2 * per_period + 2 * 2 * (SEAL_AFTER_PARTIALS + new)
    # AND the month's last runs cost about what the short month's did
    assert max(long_reads[-4:]) <= 2 * max(short_reads)


def test_a_crash_between_putting_statements_and_the_cursor_republishes_and_the_home_counts_once() -> None:
    # GIVEN three cells with usage, aggregated but not published; one cell's usage arrives in three
    # parts, each published by catch-up through a store that crashes once: before a publish mark
    # (its statements are put), before sealing a window, before moving the cursor
    by_cell = split_by_cell(make_events(seed=31, count=2000), seed=3)
    deployment = Deployment(CATALOG, CELLS, stream_batch=7)
    name = CELLS[2]
    for cell, lines in by_cell.items():
        if cell != name:
            deliver(deployment.cells[cell], lines)
    cell, lines = deployment.cells[name], by_cell[name]
    third = len(lines) // 3 + 1
    for part, at in enumerate(("put", "put_new", "transact")):
        deliver(cell, lines[part * third : (part + 1) * third])
        crashing = CrashingStore(cell.store, at)
        publisher = StatementPublisher(CATALOG, crashing, deployment.exchange, name)

        # WHEN the run crashes, and the next run goes on
        with contextlib.suppress(RuntimeError):
            publisher.catch_up(NOW)
        assert crashing.crashed
        publisher.catch_up(NOW)

        # THEN nothing of the ledger is left unpublished, before any final marker
        assert set(deployment.exchange.keys("")) >= every_statement_key(cell, publisher)

    # AND once every cell publishes and the months close, the home bills each partial once
    deployment.close(DECEMBER)
    assert_equals_rate(deployment, by_cell)


def test_two_publishers_racing_never_move_the_cursor_back_and_skip_nothing() -> None:
    # GIVEN a cell whose first window of each month is sealed and published, more partials after
    # it, and a twin publisher on the same ledger and exchange
    cell = Cell(CATALOG, MemoryPublisher(), stream_batch=5, name=CELLS[2])
    exchange = MemoryExchange()
    events = make_events(seed=41, count=1500)
    twin = StatementPublisher(CATALOG, cell.store, exchange, cell.name)
    deliver(cell, events[:500])
    twin.catch_up(NOW)
    deliver(cell, events[500:1000])
    seen: list[tuple[int, int]] = []

    def twin_runs_first() -> None:
        """More usage arrives and the twin publishes all of it, twice, before our first write lands."""
        deliver(cell, events[1000:])
        twin.catch_up(NOW)
        twin.catch_up(NOW)
        seen.append((published_through(cell.store, OCTOBER), published_through(cell.store, NOVEMBER)))

    racing = CrashingStore(cell.store, at="put", before=twin_runs_first)
    publisher = StatementPublisher(CATALOG, racing, exchange, cell.name)

    # WHEN our publisher, having read the old cursor, writes after the twin moved it on
    publisher.catch_up(NOW)

    # THEN each period's cursor is where the twin left it or further, never back
    after = (published_through(cell.store, OCTOBER), published_through(cell.store, NOVEMBER))
    assert seen and all(a >= b for a, b in zip(after, seen[0], strict=True))
    assert min(seen[0]) >= 1
    # AND every partial is published, once more runs find nothing new
    assert set(exchange.objects) == every_statement_key(cell, publisher)
    assert publisher.catch_up(NOW) == [] and twin.catch_up(NOW) == []
