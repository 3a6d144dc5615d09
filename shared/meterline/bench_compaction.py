"""Measurement 3 of `meterline bench --pipeline`: does rating stay flat as a period fills up?

The period's events are metered into an in-memory ledger, then aggregated in small batches (many
partials, as a month at volume makes) with the rate job run on every new partial, the way its
stream trigger would at low traffic. For each rate call it takes the CPU time and the items read;
the calls are split into quarters of the period so that a cost growing with the period's age
shows as a ratio above one (re-reading every partial, as before rollups, grows linearly: the last
quarter's mean is about seven times the first's). It also counts the write units the rollups and
heads cost, per accepted event, since compaction is paid in writes.

After each rate call publish's catch-up runs too (the schedule of the clouds whose ledger cannot
trigger publish), on a store of its own over the same ledger, and its items read per run are split
the same way: re-reading every partial and mark of the month, as it once did, grows with its age.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from meterline.adapters.memory import MemoryExchange, MemoryPublisher, MemoryStore
from meterline.bootstrap import Jobs
from meterline.catalog import Catalog
from meterline.pipeline.aggregate import StreamRecord
from meterline.pipeline.ledger import SEAL_AFTER_PARTIALS, is_partial
from meterline.pipeline.processing import MeterProcessor
from meterline.pipeline.publish import StatementPublisher
from meterline.records import AcceptedUsage
from meterline.topology import TABLES, USAGE_TABLE

if TYPE_CHECKING:
    from meterline.bench_pipeline import CountingStore
    from meterline.pipeline.rate import RunningCharges

PARTIAL_EVENTS = 250
"""Usage records per aggregate transaction here: a quarter of a full stream batch, to make many
partials from a bench-sized period."""
QUARTERS = 4


@dataclass
class RateCall:
    cpu_seconds: float
    items_read: int


def measure_compaction(catalog: Catalog, lines: Sequence[bytes], batch: int) -> dict[str, Any]:
    from meterline.bench_pipeline import CountingStore, batches, delivered

    store = CountingStore(MemoryStore([table.name for table in TABLES]))
    jobs = Jobs(catalog, store, MemoryPublisher())
    metering = MeterProcessor(jobs.meter)
    accepted = sum(metering.run(chunk).accepted for chunk in batches(delivered(lines), batch))
    usage = list(store.created[USAGE_TABLE.name])
    store.aggregates_write_units.clear()
    aggregator, charges = jobs.aggregator, jobs.charges
    calls: list[RateCall] = []
    seen = 0
    log = store.created["aggregates"]
    stream = [StreamRecord(str(n), AcceptedUsage.from_item(item)) for n, item in enumerate(usage, 1)]
    # publish on its own counter: its marks and seals stay out of the compaction's write units
    publish_store = CountingStore(store.inner)
    publisher = StatementPublisher(catalog, publish_store, MemoryExchange(), "bench")
    now = max(record.usage.period for record in stream).start
    publish_reads: list[int] = []
    for records in batches(stream, PARTIAL_EVENTS):
        aggregator.run(records)
        new, seen = [item for item in log[seen:] if is_partial(item)], len(log)
        calls.append(_rate_call(charges, store, new))
        read_before = publish_store.items_read
        publisher.catch_up(now)
        publish_reads.append(publish_store.items_read - read_before)
    return {**_report(calls, accepted, store), **_publish_report(publish_reads)}


def _rate_call(charges: RunningCharges, store: CountingStore, partials: list[Any]) -> RateCall:
    read_before = store.items_read
    start = time.process_time()
    charges.run(partials)
    return RateCall(time.process_time() - start, store.items_read - read_before)


def _report(calls: list[RateCall], accepted: int, store: CountingStore) -> dict[str, Any]:
    cpu_ms = _quarter_means([call.cpu_seconds * 1000 for call in calls])
    reads = _quarter_means([call.items_read for call in calls])
    kinds = store.aggregates_write_units
    return {
        "partials": len(calls),
        "events_per_partial": PARTIAL_EVENTS,
        "seal_after_partials": SEAL_AFTER_PARTIALS,
        "rate_cpu_ms_per_call_by_quarter": [str(value) for value in cpu_ms],
        "rate_items_read_per_call_by_quarter": [str(value) for value in reads],
        "last_to_first_quarter_cpu": str(_quotient(cpu_ms[-1], cpu_ms[0])),
        "last_to_first_quarter_reads": str(_quotient(reads[-1], reads[0])),
        "max_items_read_per_call": max(call.items_read for call in calls),
        "aggregates_wru_by_kind": dict(sorted(kinds.items())),
        "compaction_wru_per_accepted_event": str(
            _quotient(Decimal(kinds["rollup"] + kinds["head"] + kinds["fence"]), Decimal(accepted))
        ),
    }


def _publish_report(reads_per_run: list[int]) -> dict[str, Any]:
    reads = _quarter_means(reads_per_run)
    return {
        "publish_items_read_per_catch_up_by_quarter": [str(value) for value in reads],
        "publish_last_to_first_quarter_reads": str(_quotient(reads[-1], reads[0])),
        "publish_max_items_read_per_catch_up": max(reads_per_run),
    }


def _quarter_means(values: list[float] | list[int]) -> list[Decimal]:
    """The mean of each quarter of ``values``, in order (a remainder past the fourth is left out)."""
    size = max(1, len(values) // QUARTERS)
    return [_mean(values[index * size : (index + 1) * size]) for index in range(QUARTERS)]


def _mean(values: list[float] | list[int]) -> Decimal:
    if not values:
        return Decimal(0)
    return (Decimal(str(sum(values))) / len(values)).quantize(Decimal("0.01"))


def _quotient(numerator: Decimal, denominator: Decimal) -> Decimal:
    return (numerator / denominator).quantize(Decimal("0.0001")) if denominator else Decimal(0)


def format_compaction(report: dict[str, Any], events: int) -> list[str]:
    cpu = ", ".join(report["rate_cpu_ms_per_call_by_quarter"])
    reads = ", ".join(report["rate_items_read_per_call_by_quarter"])
    publish = ", ".join(report["publish_items_read_per_catch_up_by_quarter"])
    return [
        f"Compaction, in-memory store, {events:,} events as {report['partials']:,} partials of "
        f"{report['events_per_partial']} events, rate on every partial, sealing after "
        f"{report['seal_after_partials']} open partials holding a quarter of the rolled-up bytes:",
        f"    rate CPU ms per call by quarter of the period   {cpu}"
        f"   (last/first {report['last_to_first_quarter_cpu']})",
        f"    items read per rate call by quarter             {reads}"
        f"   (last/first {report['last_to_first_quarter_reads']};"
        f" at most {report['max_items_read_per_call']})",
        f"    rollups, heads and fences: {report['compaction_wru_per_accepted_event']} WRU per accepted"
        f" event   (aggregates by kind: {report['aggregates_wru_by_kind']})",
        f"    items read per publish catch-up by quarter      {publish}"
        f"   (last/first {report['publish_last_to_first_quarter_reads']};"
        f" at most {report['publish_max_items_read_per_catch_up']})",
    ]
