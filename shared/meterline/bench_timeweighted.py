"""Measurement 4 of `meterline bench --pipeline`: does a gauge's cost stay flat as its history grows?

One tenant sends a gauge sample every second (a time-weighted meter and a latest meter read it);
the samples go through aggregate and rate in memory, as the cell drives them: stream batches of
``AGGREGATE.batch_size`` usage records, and rate on each batch's new partial. Each batch's CPU
time is shared by its samples; the figure is the CPU per sample of the first and of the last 10%
of the samples, and their ratio: a cost that grows with the tenant's history shows as a ratio
well above one (re-reading and re-sorting every sample so far makes it grow linearly).
`meterline bench --pipeline` runs it three times, each in a process of its own, and reports the
run of median ratio.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

from meterline.adapters.memory import MemoryPublisher
from meterline.catalog import Catalog, parse_catalog
from meterline.periods import Period
from meterline.pipeline.aggregate import StreamRecord
from meterline.pipeline.cell import Cell
from meterline.pipeline.ledger import is_partial
from meterline.ports import Item
from meterline.records import AcceptedUsage
from meterline.topology import AGGREGATE, AGGREGATES_TABLE

SAMPLES = 1_000_000
PERIOD = Period(2026, 11)
TENANT = "org-gauge"
SHARE = 10
"""The first and the last ``1/SHARE`` of the samples are compared."""

CATALOG = """\
meters:
  - {key: cku_hours, event_type: cluster.status, aggregation: time_weighted, value: cku}
  - {key: cku, event_type: cluster.status, aggregation: latest, value: cku}
plans:
  - key: dedicated
    version: 1
    effective_from: "2026-01-01"
    currency: USD
    charges:
      - {meter: cku_hours, model: per_unit, unit_price: "2.25"}
      - {meter: cku, model: per_unit, unit_price: "10"}
customers:
  - {tenant: org-gauge, plan: dedicated}
"""


def gauge_catalog() -> Catalog:
    return parse_catalog(CATALOG, "<time-weighted bench catalog>")


def samples(count: int) -> Iterator[StreamRecord]:
    """One sample a second from the period's start, its value changing now and then."""
    start = PERIOD.start
    meters = ("cku_hours", "cku")
    for number in range(count):
        value = Decimal(1 + (number // 3600) % 4)
        usage = AcceptedUsage(
            (TENANT, "cluster/lkc-1", f"s{number:09d}"),
            b"",
            start + timedelta(seconds=number),
            tuple((meter, (), value) for meter in meters),
            f"usage.events|0|{number}",
        )
        yield StreamRecord(str(number + 1), usage)


def measure_time_weighted(count: int = SAMPLES) -> dict[str, Any]:
    if count < SHARE:
        raise ValueError(f"{count} samples are too few to compare the first and last 1/{SHARE} of them")
    cell = Cell(gauge_catalog(), MemoryPublisher(), stream_batch=AGGREGATE.batch_size)
    archive_reads = _count_archive_reads(cell)
    costs: list[tuple[int, float]] = []  # (samples in the batch, CPU seconds of aggregate and rate)
    batch: list[StreamRecord] = []
    for record in samples(count):
        batch.append(record)
        if len(batch) < AGGREGATE.batch_size:
            continue
        costs.append((len(batch), _aggregate_and_rate(cell, batch)))
        batch = []
    if batch:
        costs.append((len(batch), _aggregate_and_rate(cell, batch)))
    first, last = _per_sample(costs, count, head=True), _per_sample(costs, count, head=False)
    return {
        "samples": count,
        "aggregate_batch": AGGREGATE.batch_size,
        "cpu_seconds": round(sum(seconds for _, seconds in costs), 3),
        "first_cpu_us_per_sample": str(first),
        "last_cpu_us_per_sample": str(last),
        "last_to_first": str((last / first).quantize(Decimal("0.01")) if first else Decimal(0)),
        "archive_reads": len(archive_reads),
    }


def _count_archive_reads(cell: Cell) -> list[str]:
    """The hours of archived samples read back (slow paths): none while samples arrive in order."""
    reads: list[str] = []
    query = cell.store.query

    def counted(table: str, pk: str, sk_prefix: str = "") -> list[Item]:
        if sk_prefix.startswith("archive|"):
            reads.append(sk_prefix)
        return query(table, pk, sk_prefix)

    cell.store.query = counted  # type: ignore[method-assign]
    return reads


def _aggregate_and_rate(cell: Cell, batch: list[StreamRecord]) -> float:
    log = cell.store.streams[AGGREGATES_TABLE.name]
    before = len(log)
    start = time.process_time()
    cell.aggregator.run(batch)
    cell.charges.run([entry.item for entry in log[before:] if is_partial(entry.item)])
    return time.process_time() - start


def _per_sample(costs: list[tuple[int, float]], count: int, head: bool) -> Decimal:
    """Mean CPU microseconds per sample over the batches holding the first (or last) share."""
    wanted, taken, seconds = max(1, count // SHARE), 0, 0.0
    for size, cpu in costs if head else reversed(costs):
        if taken >= wanted:
            break
        taken += size
        seconds += cpu
    return (Decimal(str(seconds)) * 1_000_000 / taken).quantize(Decimal("0.1"))


def format_time_weighted(report: dict[str, Any]) -> list[str]:
    lines = [
        f"One tenant's gauge, {report['samples']:,} per-second samples (time_weighted and latest) through"
        f" aggregate (batches of {report['aggregate_batch']:,}) and rate, in memory"
        f" ({report['cpu_seconds']} CPU s):",
        f"    CPU per sample, first 10% {report['first_cpu_us_per_sample']} µs, last 10%"
        f" {report['last_cpu_us_per_sample']} µs   (last/first {report['last_to_first']}; target ≤ 1.5;"
        f" archived hours read back: {report['archive_reads']})",
    ]
    ratios = report.get("runs_last_to_first")
    if ratios:
        runs = ", ".join(ratios)
        lines.append(f"    the median of {len(ratios)} runs, each in its own process (last/first {runs})")
    return lines
