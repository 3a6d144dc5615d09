"""A poison record ends rejected (or set aside), never stalls: meter and aggregate on the in-memory
store, with records that are bad, that the job fails on, or that the store keeps refusing."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from meterline.adapters.memory import MemoryPublisher, MemoryStore
from meterline.adapters.usage_join import NotYetMeteredError, accepted_usage
from meterline.catalog import Catalog
from meterline.local.ledgers import LedgerCounts
from meterline.metering import Metering
from meterline.pipeline.aggregate import Aggregator, StreamRecord
from meterline.pipeline.ledger import DEAD_PK
from meterline.pipeline.meter import DeliveredRecord, Meter
from meterline.pipeline.processing import MAX_ATTEMPTS, AggregateProcessor, MeterProcessor, MeterReport
from meterline.ports import Item, RetriableStoreError, StoreError
from meterline.records import AcceptedUsage, Delivery, event_digest
from meterline.topology import (
    AGGREGATES_TABLE,
    OUTCOMES_TABLE,
    TABLES,
    USAGE_EVENTS,
    USAGE_REJECTED,
    USAGE_TABLE,
)
from tests.helpers import BadEvent, bad_events, corpus_catalog, event, rate
from tests.pipeline.test_cell import CATALOG


def records(lines: Sequence[bytes | str], partition: int = 0) -> list[DeliveredRecord]:
    return [
        DeliveredRecord(Delivery(USAGE_EVENTS.name, partition, offset), b"org-42", _bytes(line))
        for offset, line in enumerate(lines)
    ]


def _bytes(line: bytes | str) -> bytes:
    return line if isinstance(line, bytes) else line.encode()


def fresh_store() -> MemoryStore:
    return MemoryStore([table.name for table in TABLES])


def metered(store: MemoryStore, publisher: MemoryPublisher) -> MeterProcessor:
    """meter on the corpus catalog, as its triggers process it."""
    return MeterProcessor(Meter(corpus_catalog(), store, publisher))


def until_settled(meter: MeterProcessor, batch: list[DeliveredRecord]) -> tuple[MeterReport, int]:
    """Deliver as Lambda does: the handed-back records again, until none is; the last report and
    how many deliveries it took."""
    total = MeterReport()
    deliveries = 0
    while batch:
        deliveries += 1
        report = meter.run(batch)
        total.accepted += report.accepted
        total.duplicates += report.duplicates
        total.rejected_by_reason.update(report.rejected_by_reason)
        total.dead_letters += report.dead_letters
        batch = report.failed
        assert deliveries < 100, "never settled"
    return total, deliveries


# --- the corpus: meter decides what `meterline rate` decides -------------------------------------


@pytest.mark.parametrize("case", bad_events(), ids=lambda case: f"{case.reason}/{case.name}")
def test_every_corpus_record_ends_in_the_outcome_meterline_rate_gives_it(case: BadEvent) -> None:
    # GIVEN one hostile case, delivered to meter as one partition
    store, publisher = fresh_store(), MemoryPublisher()
    meter = metered(store, publisher)
    # WHEN metered
    report = meter.run(records(case.lines))
    # THEN nothing is handed back, and the counts are `meterline rate`'s for the same lines
    summary = rate(corpus_catalog(), case.lines)["summary"]
    assert report.failed == []
    assert (report.accepted, report.duplicates) == (summary["accepted"], summary["duplicates"])
    assert {r: n for r, n in summary["rejected_by_reason"].items() if n} == dict(report.rejected_by_reason)
    # AND the bad record is dead-lettered with its original bytes and its reason
    [dead] = publisher.on(USAGE_REJECTED.name)
    assert (dead.value, dead.headers["reason"]) == (case.lines[-1], case.reason.encode())
    assert len(dead.headers["detail"]) <= 2000
    [outcome] = store.scan(OUTCOMES_TABLE.name)
    assert (outcome["outcome"], outcome["reason"]) == ("rejected", case.reason)


# --- meter: a record it fails on --------------------------------------------------------------


class BrokenMetering(Metering):
    """A metering with a bug that shows on one event type only, which it reads the exact way
    (``readings``), not on the fast path for plain events."""

    def __init__(self, meters_by_type: Any) -> None:
        super().__init__(meters_by_type)
        self.plain = {kind: plain for kind, plain in self.plain.items() if kind != "gauge.reading"}

    def readings(self, event_type: str, data: Any) -> Any:
        if event_type == "gauge.reading":
            raise KeyError("a bug")
        return super().readings(event_type, data)


def test_an_unforeseen_error_on_one_record_rejects_it_as_unprocessable_and_the_partition_goes_on() -> None:
    # GIVEN a meter that fails on gauge readings, and a partition with one between two good events
    store, publisher = fresh_store(), MemoryPublisher()
    meter = metered(store, publisher)
    meter.meter.metering = BrokenMetering(corpus_catalog().meters_by_type)
    lines = [
        event("e1", {"bytes": 1, "cluster": "c"}),
        event("e2", {"level": 5}, type="gauge.reading"),
        event("e3", {"bytes": 2, "cluster": "c"}),
    ]
    # WHEN the partition is metered
    report = meter.run(records(lines))
    # THEN the gauge reading is rejected as unprocessable, its bytes dead-lettered; the others accepted
    assert report.failed == [] and report.accepted == 2
    assert report.rejected_by_reason == Counter({"unprocessable": 1})
    [dead] = publisher.on(USAGE_REJECTED.name)
    assert dead.value == lines[1].encode() and dead.headers["reason"] == b"unprocessable"
    assert b"KeyError" in dead.headers["detail"]


class RefusingStore(MemoryStore):
    """Refuses the usage write of event ``event_id`` with ``error``, ``times`` times (forever if None);
    ``after_write``: the write takes effect before the error (a lost response)."""

    def __init__(self, event_id: str, error: Exception, times: int | None = None, after_write: bool = False):
        super().__init__([table.name for table in TABLES])
        self.event_id, self.error, self.times, self.after_write = event_id, error, times, after_write
        self.refused = 0

    def put_new(self, table: str, item: Item) -> Item | None:
        refusing = self.times is None or self.refused < self.times
        if table == USAGE_TABLE.name and item.get("id") == self.event_id and refusing:
            self.refused += 1
            if self.after_write:
                super().put_new(table, item)
            raise self.error
        return super().put_new(table, item)


PARTITION = [event(f"e{n}", {"bytes": n, "cluster": "c"}) for n in range(1, 5)]


def test_a_record_the_store_keeps_refusing_is_dead_lettered_with_its_attempts() -> None:
    # GIVEN a store that refuses e2's usage item on every attempt (not an outage: the same answer each time)
    store, publisher = RefusingStore("e2", StoreError("ValidationException: item refused")), MemoryPublisher()
    meter = metered(store, publisher)
    # WHEN the partition is delivered again and again, as Lambda hands records back
    report, deliveries = until_settled(meter, records(PARTITION))
    # THEN e2 was tried MAX_ATTEMPTS times, then dead-lettered as unprocessable; the rest accepted
    assert deliveries == MAX_ATTEMPTS and store.refused == MAX_ATTEMPTS
    assert report.accepted == 3 and report.rejected_by_reason == Counter({"unprocessable": 1})
    assert report.dead_letters == [(Delivery(USAGE_EVENTS.name, 0, 1), MAX_ATTEMPTS)]
    [dead] = publisher.on(USAGE_REJECTED.name)
    assert dead.value == PARTITION[1].encode()
    assert (dead.headers["reason"], dead.headers["attempts"]) == (
        b"unprocessable",
        str(MAX_ATTEMPTS).encode(),
    )
    [outcome] = store.scan(OUTCOMES_TABLE.name)
    assert (outcome["outcome"], outcome["reason"], outcome["attempts"]) == ("rejected", "unprocessable", 5)
    # AND the ledgers reconcile: every record once
    counts = LedgerCounts(store)
    assert counts.received == len(PARTITION)


def test_an_outage_is_waited_out_without_using_up_attempts() -> None:
    # GIVEN a store that throttles e2's write for three times as many deliveries as the attempts bound
    store = RefusingStore("e2", RetriableStoreError("throttled"), times=3 * MAX_ATTEMPTS)
    meter = metered(store, MemoryPublisher())
    # WHEN delivered until settled
    report, deliveries = until_settled(meter, records(PARTITION))
    # THEN every event is accepted once the store answers again; nothing was dead-lettered or counted
    assert deliveries == 3 * MAX_ATTEMPTS + 1
    assert report.accepted == 4 and report.dead_letters == []
    assert list(store.scan(OUTCOMES_TABLE.name)) == []


def test_a_record_that_fails_a_few_times_then_passes_is_accepted_and_reconciles() -> None:
    # GIVEN two refusals of e2 (fewer than the attempts bound)
    store = RefusingStore("e2", StoreError("InternalFailure"), times=2)
    meter = metered(store, MemoryPublisher())
    # WHEN delivered until settled
    report, _ = until_settled(meter, records(PARTITION))
    # THEN e2 is accepted; its attempts are noted, as retrying, which no count takes for an outcome
    assert report.accepted == 4 and report.dead_letters == []
    [note] = store.scan(OUTCOMES_TABLE.name)
    assert (note["outcome"], note["attempts"]) == ("retrying", 2)
    counts = LedgerCounts(store)
    assert (counts.received, counts.duplicates, sum(counts.rejected_by_reason.values())) == (4, 0, 0)


def test_a_record_whose_write_landed_before_every_failure_ends_accepted_not_dead_lettered() -> None:
    # GIVEN a store that writes e2's usage and then fails the call, every time
    store = RefusingStore("e2", StoreError("connection reset"), after_write=True)
    publisher = MemoryPublisher()
    meter = metered(store, publisher)
    # WHEN delivered until settled
    report, _ = until_settled(meter, records(PARTITION))
    # THEN e2's usage stands under its delivery and it counts as accepted: one outcome, not two
    assert report.accepted == 4 and report.rejected == 0
    assert publisher.on(USAGE_REJECTED.name) == []
    assert LedgerCounts(store).received == 4


def test_a_join_takes_a_dead_lettered_valid_record_as_settled_not_as_waiting_for_meter() -> None:
    # GIVEN e2 dead-lettered after the store refused it every time
    store = RefusingStore("e2", StoreError("ValidationException"))
    meter = metered(store, MemoryPublisher())
    until_settled(meter, records(PARTITION))
    metering = Metering(corpus_catalog().meters_by_type)
    e2, e5 = records([*PARTITION, event("e5", {"bytes": 5, "cluster": "c"})])[1::3]
    # WHEN aggregate joins it with the usage ledger THEN it brings no usage, and does not wait
    assert accepted_usage(store, metering, e2) is None
    # AND a record meter has not reached still waits
    with pytest.raises(NotYetMeteredError):
        accepted_usage(store, metering, e5)


def test_tenants_whose_keys_differ_only_in_where_a_nul_falls_are_both_accepted() -> None:
    # GIVEN two tenants' events whose (subject, source, id) joined with NUL are the same text
    lines = [
        event("x", {"bytes": 1, "cluster": "c"}, subject="org-1\x00lkc", source="a"),
        event("x", {"bytes": 2, "cluster": "c"}, subject="org-1", source="lkc\x00a"),
    ]
    # WHEN metered THEN neither is taken for the other: both accepted, as `meterline rate` counts them
    report = metered(fresh_store(), MemoryPublisher()).run(records(lines))
    assert report.accepted == 2 == rate(corpus_catalog(), lines)["summary"]["accepted"]


# --- aggregate: a stream record it cannot apply -------------------------------------------------


def usage(event_id: str, measurements: tuple[tuple[str, tuple[Any, ...], Any], ...]) -> AcceptedUsage:
    key = ("org-1", "s", event_id)
    return AcceptedUsage(
        key, b"f" * 16, datetime(2026, 11, 2, tzinfo=UTC), measurements, f"usage.events|0|{event_id}"
    )


def stream(*usages: AcceptedUsage) -> list[StreamRecord]:
    return [StreamRecord(str(number), item) for number, item in enumerate(usages, start=1)]


def ingress(event_id: str, gigabytes: int) -> AcceptedUsage:
    return usage(event_id, (("ingress_gb", ("a",), Decimal(gigabytes * 10**9)),))


def quantities(store: MemoryStore, catalog: Catalog) -> dict[Any, Any]:
    from meterline.periods import Period
    from meterline.pipeline.ledger import PeriodLedger

    ledger = PeriodLedger(catalog, store, Period(2026, 11))
    return ledger.book({"org-1"}).quantities(catalog, "org-1", Period(2026, 11))


def test_stream_records_that_cannot_be_applied_are_set_aside_and_the_batch_goes_on() -> None:
    # GIVEN a batch with usage of a meter the catalog no longer has, and a state too large for a
    # partial, between good records
    store = fresh_store()
    aggregator = Aggregator(CATALOG, store)
    batch = stream(
        ingress("1", 1),
        usage("2", (("retired_meter", (), Decimal(1)),)),
        ingress("3", 2),
        usage("4", (("schemas", (), random.Random(4).randbytes(600_000).hex()),)),  # zlib cannot shrink it
        ingress("5", 4),
    )
    # WHEN aggregated, and the same batch retried
    applied = AggregateProcessor(aggregator).run(batch)
    again = AggregateProcessor(aggregator).run(batch)
    # THEN the good records count once, and each poison record is filed under `dead`, once
    assert (applied, again) == (3, 0)
    assert quantities(store, CATALOG) == {("ingress_gb", ("a",)): 7}
    dead = sorted(store.query(AGGREGATES_TABLE.name, DEAD_PK), key=lambda item: str(item["sk"]))
    assert [item["usage_pk"] for item in dead] == [
        event_digest(batch[1].usage.key),
        event_digest(batch[3].usage.key),
    ]
    assert "KeyError" in str(dead[0]["error"]) and "more than a partial may" in str(dead[1]["error"])
    assert aggregator.dead_lettered == 2  # the retry finds them inside the range its marker covers


def test_a_batch_that_fails_for_no_record_of_its_own_still_raises() -> None:
    # GIVEN a store failing every transaction (nothing any record could be blamed for)
    class Failing(MemoryStore):
        def transact(self, writes: Any) -> None:
            raise RuntimeError("adapter bug")

    aggregator = Aggregator(CATALOG, Failing([table.name for table in TABLES]))
    # WHEN aggregated THEN the failure surfaces, and no record is set aside for it
    with pytest.raises(RuntimeError, match="adapter bug"):
        AggregateProcessor(aggregator).run(stream(ingress("1", 1)))
    assert aggregator.dead_lettered == 0
