"""Fault injection: 20,000+ events through the cell while the store fails at seeded points.

A fault either stops a call before it writes (throttling, a lost race) or after it wrote but
before the caller heard back (a crash between two writes, a lost response). Deliveries are
retried the way Lambda does: the failed records again, or the whole batch again; stream batches
again from the same first record, sometimes longer. Two closers run at once. After recovery the
ledgers reconcile and the invoices equal `meterline rate` on the same events.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from meterline.adapters.memory import MemoryPublisher, StreamingMemoryStore
from meterline.bootstrap import Jobs
from meterline.offline import rate_lines
from meterline.periods import Period
from meterline.pipeline.aggregate import StreamRecord
from meterline.pipeline.close import Closer
from meterline.pipeline.invoices import all_amendments, invoices_by_period
from meterline.pipeline.ledger import is_partial
from meterline.pipeline.meter import DeliveredRecord
from meterline.pipeline.processing import MeterProcessor
from meterline.ports import Item, RetriableStoreError, Write
from meterline.records import AcceptedUsage, Delivery
from meterline.topology import (
    AGGREGATES_TABLE,
    OUTCOMES_TABLE,
    TABLES,
    USAGE_EVENTS,
    USAGE_TABLE,
)

from .test_cell import CATALOG, make_events, stream_vs_batch

T = TypeVar("T")


class FaultyStore:
    """Wraps a store; each write fails before or after taking effect at a seeded rate."""

    def __init__(self, inner: StreamingMemoryStore, seed: int, rate: float) -> None:
        self.inner = inner
        self.rng = random.Random(seed)
        self.rate = rate
        self.faults: Counter[str] = Counter()
        self.lock = threading.Lock()

    def _call(self, name: str, action: Callable[[], T], scale: float = 1.0) -> T:
        rate = min(1.0, self.rate * scale)
        with self.lock:
            roll = self.rng.random()
        if roll < rate / 2:
            self.faults[f"{name} before"] += 1
            raise RetriableStoreError(f"injected: {name} throttled")
        result = action()
        if roll < rate:
            self.faults[f"{name} after"] += 1
            raise RetriableStoreError(f"injected: crash after {name}")
        return result

    def get(self, table: str, pk: str, sk: str) -> Item | None:
        return self.inner.get(table, pk, sk)

    def query(self, table: str, pk: str, sk_prefix: str = "") -> list[Item]:
        return self.inner.query(table, pk, sk_prefix)

    def scan(self, table: str) -> Iterator[Item]:
        return self.inner.scan(table)

    def put_new(self, table: str, item: Item) -> Item | None:
        return self._call("put_new", lambda: self.inner.put_new(table, item))

    def put(self, table: str, item: Item) -> None:
        self._call("put", lambda: self.inner.put(table, item))

    def transact(self, writes: Sequence[Write]) -> None:
        # transactions are few (one per stream batch): fail them more often so every kind shows
        self._call("transact", lambda: self.inner.transact(writes), scale=6)


def until_done(action: Callable[[], T], attempts: int = 200) -> T:
    for _ in range(attempts):
        try:
            return action()
        except RetriableStoreError:
            continue
    raise AssertionError("never recovered")


def test_faults_lose_nothing_and_count_nothing_twice() -> None:
    # GIVEN 20,000+ events with duplicates, conflicts, malformed lines and late October usage
    lines = make_events(seed=11, count=20_000)
    late = [line for line in make_events(seed=12, count=600) if b'"time":"2026-10' in line]
    rng = random.Random(2026)
    inner = StreamingMemoryStore([t.name for t in TABLES], [t.name for t in TABLES if t.stream])
    store = FaultyStore(inner, seed=99, rate=float(__import__("os").environ.get("FAULT_RATE", "0.04")))
    publisher = MemoryPublisher()
    instances = [Jobs(CATALOG, store, publisher) for _ in range(2)]  # type: ignore[arg-type]
    meter = MeterProcessor(instances[0].meter)  # as the Kafka trigger hands records back
    aggregator, charges = instances[0].aggregator, instances[0].charges
    closers = [jobs.closer for jobs in instances]
    positions = {"usage": 0, "aggregates": 0}

    def deliver(values: list[bytes], first_offset: int) -> None:
        offset = first_offset
        while offset < first_offset + len(values):
            size = rng.randint(50, 500)
            batch = [
                DeliveredRecord(Delivery(USAGE_EVENTS.name, 0, offset + i), None, value)
                for i, value in enumerate(values[offset - first_offset : offset - first_offset + size])
            ]
            report = meter.run(batch)
            while report.failed:  # Lambda: again from the first failed record of each partition
                report = meter.run(report.failed)
            if rng.random() < 0.05:
                meter.run(batch)  # a lost acknowledgement: the whole batch once more
            offset += len(batch)
            pump()

    def pump() -> None:
        log = inner.streams[USAGE_TABLE.name]
        while positions["usage"] < len(log):
            size = rng.randint(100, 1000)
            entries = log[positions["usage"] : positions["usage"] + size]
            records = [StreamRecord(e.sequence, AcceptedUsage.from_item(e.item)) for e in entries]
            until_done(lambda records=records: aggregator.run(records))
            if rng.random() < 0.1:  # a retried batch, sometimes reaching further
                longer = log[positions["usage"] : positions["usage"] + size + 50]
                again = [StreamRecord(e.sequence, AcceptedUsage.from_item(e.item)) for e in longer]
                until_done(lambda again=again: aggregator.run(again))
                entries = longer
            positions["usage"] += len(entries)
        partial_log = inner.streams[AGGREGATES_TABLE.name]
        new = [e.item for e in partial_log[positions["aggregates"] :] if is_partial(e.item)]
        positions["aggregates"] = len(partial_log)
        if new:
            until_done(lambda: charges.run(new))

    def close_concurrently(now: datetime) -> None:
        errors: list[BaseException] = []

        def run(closer: Closer) -> None:
            try:
                until_done(lambda: closer.run(now))
            except BaseException as error:  # surfaced below
                errors.append(error)

        threads = [threading.Thread(target=run, args=(closer,)) for closer in closers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors

    # WHEN it all flows through the faulty store, October closes mid-November (two closers at once),
    # the late usage arrives, and November closes
    deliver(lines, 0)
    faults_before_closing = Counter(store.faults)  # single-threaded so far: the same on every run
    close_concurrently(datetime(2026, 11, 15, tzinfo=UTC))
    deliver(late, len(lines))
    close_concurrently(datetime(2026, 12, 2, tzinfo=UTC))

    # THEN faults did happen, of every kind, and while issuing (numbered documents are transactions)
    kinds = {"put_new before", "put_new after", "put after", "transact before", "transact after"}
    assert store.rate == 0 or kinds <= set(faults_before_closing)
    issuing = store.faults["transact after"] - faults_before_closing["transact after"]
    assert store.rate == 0 or issuing > 0
    # AND the ledgers reconcile with the offline count of the same events
    everything = lines + late
    summary = rate_lines(CATALOG, everything, Period(2026, 10)).summary
    accepted = sum(1 for _ in inner.scan(USAGE_TABLE.name))
    outcomes = Counter(
        str(item["reason"]) if item["outcome"] == "rejected" else "duplicate"
        for item in inner.scan(OUTCOMES_TABLE.name)
    )
    assert accepted == summary.accepted + summary.out_of_period
    assert outcomes["duplicate"] == summary.duplicates
    assert {r: n for r, n in outcomes.items() if r != "duplicate"} == {
        r: n for r, n in summary.rejected_by_reason.items() if n
    }
    assert accepted + sum(outcomes.values()) == len(everything)
    # AND the invoices and amendments equal `meterline rate` to the cent (late usage through amendments)
    assert stream_vs_batch(CATALOG, inner, everything) == []
    invoices = invoices_by_period(inner)
    amendments = all_amendments(inner)
    assert sorted(len(v) for v in invoices.values()) == [3, 3] and amendments
    # AND one number per document, with no gap, though closers raced and crashed between writes
    numbers = sorted(int(d["number"]) for d in [*amendments, *(i for v in invoices.values() for i in v)])
    assert numbers == list(range(1, len(numbers) + 1))
