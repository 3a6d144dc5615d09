"""`meterline bench --pipeline`: what the pipeline costs per event, measured on the real jobs.

Two measurements, both on events from ``meterline.generate`` with the bench catalog (every tenant
up to ``bench.CUSTOMERS`` is a billed customer):

1. Write (and read) request units: meter → aggregate → rate → close on ``DynamoStore`` against
   moto in process. Write units are the adapter's own ``WriteMeter`` (a lower bound: an overwrite
   is billed on the larger of old and new item), split per stage from ``store.write_units`` and
   per table by a counting wrapper that applies the same rules; read units are counted by that
   wrapper from the items each read returns (strongly consistent: 4 KB per unit, at least one).
   The usage and aggregates streams are replayed in commit order, in the topology's batch sizes.
2. Handler CPU time: the same jobs on the in-memory cell, and the meter's AWS Lambda handler
   (Powertools included) with an in-memory store injected (without the cell's stream log, which
   stands in for DynamoDB Streams: in AWS the table, not the function, pays for the stream).
   A CPU-bound second at any memory up to 1,769 MB (one full vCPU) costs 1769/1024 GB-seconds:
   below it Lambda gives a proportional share of a vCPU, so the duration grows as the memory
   shrinks. DynamoDB round trips are not
   in these figures, so the GB-seconds are a floor.

It then measures how rating behaves as a period fills (``bench_compaction``) and as one tenant's
per-second gauge piles up samples (``bench_timeweighted``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from meterline.adapters.dynamodb import DynamoStore, item_size, write_request_units
from meterline.adapters.memory import MemoryPublisher, MemoryStore, StreamEntry
from meterline.bench import PERIOD, bench_catalog, in_fresh_process
from meterline.bench_compaction import format_compaction, measure_compaction
from meterline.bench_timeweighted import SAMPLES, format_time_weighted, measure_time_weighted
from meterline.bootstrap import Jobs
from meterline.catalog import Catalog
from meterline.generate import GenerateError, GenerateSpec, generate
from meterline.local.runtime import load_function
from meterline.pipeline.aggregate import StreamRecord
from meterline.pipeline.cell import Cell
from meterline.pipeline.ledger import is_partial
from meterline.pipeline.meter import DeliveredRecord
from meterline.pipeline.processing import AggregateProcessor, MeterProcessor, MeterReport
from meterline.ports import Expect, Item, Put, PutNew, Store, Write
from meterline.records import AcceptedUsage, Delivery
from meterline.topology import (
    AGGREGATE,
    AGGREGATES_TABLE,
    BILLING_INVOICES,
    METER,
    RATE,
    TABLES,
    USAGE_EVENTS,
    USAGE_TABLE,
)

REPO = Path(__file__).resolve().parents[2]
MEASURED_JSON = REPO / "infra" / "cost" / "measured.json"
LAMBDA_MB = Decimal(METER.memory_mb)
GB_SECONDS_PER_CPU_SECOND = LAMBDA_MB / 1024
"""One vCPU second at 1,769 MB, or (1024/1769 of a vCPU for 1769/1024 s) at 1,024 MB: same GB-s."""
MILLION = Decimal(1_000_000)
READ_UNIT_BYTES = 4096
ITEM_OVERHEAD_BYTES = 100
"""DynamoDB bills 100 bytes of storage per item on top of its attributes."""
INVOICE_MONTHS_KEPT = 13
STAGES = ("meter", "aggregate", "rate", "close")
ROLLUP_READS = (
    "; rate reads the touched buckets' rollups and at most a sealing threshold of open partials per run,"
    " so this does not grow with the period's age (see the compaction figures)"
)


def events_for(catalog: Catalog, events: int, tenants: int, seed: int = 2026) -> list[bytes]:
    spec = GenerateSpec(PERIOD, tenants, seed, events)
    return [line.rstrip(b"\n") for line in generate(catalog, spec)]


def delivered(lines: Sequence[bytes]) -> list[DeliveredRecord]:
    """The lines as the MSK trigger hands them over: keyed by subject, one offset per partition."""
    offsets: Counter[int] = Counter()
    records = []
    for line in lines:
        try:
            subject = orjson.loads(line).get("subject")
        except (orjson.JSONDecodeError, AttributeError):
            subject = None
        key = subject.encode() if isinstance(subject, str) else None
        partition = sum(key) % USAGE_EVENTS.partitions if key else 0
        records.append(DeliveredRecord(Delivery(USAGE_EVENTS.name, partition, offsets[partition]), key, line))
        offsets[partition] += 1
    return records


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- 1. request units on DynamoDB (moto) ------------------------------------------------------------


@dataclass
class CountingStore:
    """The DynamoStore, with its request units counted per table and its two streamed tables
    logged as DynamoDB Streams shows them (an INSERT per created item, in commit order)."""

    inner: Store
    write_units: Counter[str] = field(default_factory=Counter)
    aggregates_write_units: Counter[str] = field(default_factory=Counter)
    """The aggregates table's, by kind of item: partial, batch (marker), fence, rollup, head, ..."""
    items_read: int = 0
    read_units: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    """Store calls, each one DynamoDB request (a query page or more): what the jobs wait on."""
    created: dict[str, list[Item]] = field(default_factory=dict)
    _keys: set[tuple[str, str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.created = {table.name: [] for table in TABLES if table.stream is not None}

    def get(self, table: str, pk: str, sk: str) -> Item | None:
        self.requests += 1
        item = self.inner.get(table, pk, sk)
        self.read_units[table] += _read_units(item_size(item) if item else 0)
        self.items_read += item is not None
        return item

    def put_new(self, table: str, item: Item) -> Item | None:
        self.requests += 1
        self._count(table, item, transactional=False)
        stored = self.inner.put_new(table, item)
        if stored is None:
            self._log(table, item)
        return stored

    def put(self, table: str, item: Item) -> None:
        self.requests += 1
        self._count(table, item, transactional=False)
        self.inner.put(table, item)
        self._log(table, item)

    def query(self, table: str, pk: str, sk_prefix: str = "") -> list[Item]:
        self.requests += 1
        items = self.inner.query(table, pk, sk_prefix)
        self.read_units[table] += _read_units(sum(item_size(item) for item in items))
        self.items_read += len(items)
        return items

    def transact(self, writes: Sequence[Write]) -> None:
        self.requests += 1
        for write in writes:
            if isinstance(write, Expect):
                self._count(write.table, {"pk": write.pk, "sk": write.sk}, transactional=True, kind="check")
            else:
                self._count(write.table, write.item, transactional=True)
        self.inner.transact(writes)
        for write in writes:
            if isinstance(write, PutNew | Put):
                self._log(write.table, write.item)

    def scan(self, table: str) -> Iterator[Item]:
        return self.inner.scan(table)

    def _count(self, table: str, item: Item, transactional: bool, kind: str = "") -> None:
        units = write_request_units(item, transactional=transactional)
        self.write_units[table] += units
        if table == AGGREGATES_TABLE.name:
            self.aggregates_write_units[kind or str(item["sk"]).split("|", 1)[0]] += units

    def _log(self, table: str, item: Item) -> None:
        key = (table, str(item["pk"]), str(item["sk"]))
        if table in self.created and key not in self._keys:
            self._keys.add(key)
            self.created[table].append(item)


def _read_units(size: int) -> int:
    return max(1, -(-size // READ_UNIT_BYTES))


@dataclass
class UnitsRun:
    received: int
    report: MeterReport
    invoices: int
    seconds: float
    write_units: dict[str, int]
    """Per stage, from the adapter's WriteMeter."""
    read_units: dict[str, int]
    """Per stage, from the counting wrapper."""
    requests: dict[str, int]
    """Per stage: DynamoDB calls, one after the other."""
    write_units_by_table: dict[str, int]
    read_units_by_table: dict[str, dict[str, int]]
    """Per stage, then per table."""
    stored_bytes: dict[str, int]
    measurements: int
    """(event, meter) pairs of the accepted events: what a naive design updates one by one."""
    usage_item_bytes: int
    invoice_message_bytes: int
    aggregate_invocations: int
    rate_invocations: int


def measure_units(catalog: Catalog, lines: Sequence[bytes], batch: int) -> UnitsRun:
    import boto3
    from moto import mock_aws

    from meterline.adapters.dynamodb import create_tables

    with mock_aws():
        client = boto3.client(
            "dynamodb", region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench"
        )
        create_tables(client, "bench-")
        dynamo = DynamoStore(client, "bench-")
        return _run_stages(catalog, dynamo, lines, batch)


def _run_stages(catalog: Catalog, dynamo: DynamoStore, lines: Sequence[bytes], batch: int) -> UnitsRun:
    store = CountingStore(dynamo)
    publisher = MemoryPublisher()
    jobs = Jobs(catalog, store, publisher)
    writes: dict[str, int] = {}
    reads: dict[str, int] = {}
    reads_by_table: dict[str, dict[str, int]] = {}
    requests: dict[str, int] = {}
    started = time.perf_counter()

    def stage(name: str, work: Callable[[], None]) -> None:
        write_before, read_before, requests_before = (
            dynamo.write_units,
            Counter(store.read_units),
            store.requests,
        )
        work()
        writes[name] = dynamo.write_units - write_before
        read_now = Counter(store.read_units)
        read_now.subtract(read_before)
        reads_by_table[name] = {table: units for table, units in read_now.items() if units}
        reads[name] = sum(read_now.values())
        requests[name] = store.requests - requests_before

    report = MeterReport()

    def meter() -> None:
        job = MeterProcessor(jobs.meter)
        for records in batches(delivered(lines), batch):
            outcome = job.run(records)
            report.accepted += outcome.accepted
            report.duplicates += outcome.duplicates
            report.rejected_by_reason.update(outcome.rejected_by_reason)
            report.failed.extend(outcome.failed)

    usage_log = store.created[USAGE_TABLE.name]

    def aggregate() -> None:
        job = AggregateProcessor(jobs.aggregator)
        stream = [StreamRecord(str(n), AcceptedUsage.from_item(item)) for n, item in enumerate(usage_log, 1)]
        for records in batches(stream, AGGREGATE.batch_size):
            job.run(records)

    aggregates_log = store.created[AGGREGATES_TABLE.name]
    rated = 0  # aggregates stream records handed to rate: counted when the rate stage starts

    def rate() -> None:
        nonlocal rated
        job = jobs.charges
        rated = len(aggregates_log)
        for records in batches(aggregates_log[:rated], RATE.batch_size):
            job.run([item for item in records if is_partial(item)])

    invoices: list[Item] = []

    def close() -> None:
        invoices.extend(jobs.closer.close(PERIOD, PERIOD.end + jobs.closer.grace))

    stage("meter", meter)
    stage("aggregate", aggregate)
    stage("rate", rate)
    stage("close", close)
    seconds = time.perf_counter() - started
    messages = publisher.on(BILLING_INVOICES.name)
    return UnitsRun(
        received=len(lines),
        report=report,
        invoices=len(invoices),
        seconds=seconds,
        write_units=writes,
        read_units=reads,
        requests=requests,
        write_units_by_table=dict(store.write_units),
        read_units_by_table=reads_by_table,
        stored_bytes={table.name: _stored_bytes(store, table.name) for table in TABLES},
        measurements=sum(len(AcceptedUsage.from_item(item).measurements) for item in usage_log),
        usage_item_bytes=sum(item_size(item) for item in usage_log),
        invoice_message_bytes=sum(len(message.value) for message in messages),
        aggregate_invocations=-(-len(usage_log) // AGGREGATE.batch_size),
        rate_invocations=-(-rated // RATE.batch_size),
    )


def _stored_bytes(store: CountingStore, table: str) -> int:
    return sum(item_size(item) + ITEM_OVERHEAD_BYTES for item in store.scan(table))


def naive_write_units(run: UnitsRun) -> int:
    """One conditional PutItem per event for dedup and one UpdateItem per (event, meter) on a
    running total, each item under 1 KB (so 1 unit each); duplicates and rejects still write
    their outcome, as here. A lower bound too: rating and invoices are not counted at all."""
    dedup = run.report.accepted + run.report.duplicates + run.report.rejected_by_reason.get("conflict", 0)
    return dedup + run.measurements + run.write_units_by_table.get("outcomes", 0)


# --- 2. CPU time of the jobs and of the meter's Lambda handler ----------------------------------------


@dataclass
class SpeedRun:
    events: int
    cpu_seconds: dict[str, float]
    handler_cpu_seconds: float
    handler_failures: int
    """Records the handler handed back for redelivery: none, or its time is not the work's."""
    usage_records: int
    aggregate_records: int
    """Partials: the aggregates stream records that reach rate through its filter."""


def measure_speed(catalog: Catalog, lines: Sequence[bytes], batch: int) -> SpeedRun:
    records = delivered(lines)
    # The handler first: timed after the cell below, its garbage collections would also walk the
    # cell's 200,000 stored items and stream log, which a Lambda process never holds.
    handler_seconds, handler_failures = _meter_handler_seconds(catalog, records, batch)
    cell = Cell(catalog, MemoryPublisher(), stream_batch=AGGREGATE.batch_size)
    cpu: dict[str, float] = {"meter": 0.0, "aggregate": 0.0, "rate": 0.0}
    usage_log = cell.store.streams[USAGE_TABLE.name]
    aggregates_log = cell.store.streams[AGGREGATES_TABLE.name]
    position = {"usage": 0, "aggregates": 0}

    def timed(job: str, work: Callable[[], object]) -> None:
        with own_heap():
            start = time.process_time()
            work()
            cpu[job] += time.process_time() - start

    def pump(final: bool) -> None:
        # Lambda's stream triggers, with full batches while events flow, and what is left at the end.
        while len(usage_log) - position["usage"] >= (1 if final else AGGREGATE.batch_size):
            entries = usage_log[position["usage"] : position["usage"] + AGGREGATE.batch_size]
            position["usage"] += len(entries)
            timed("aggregate", partial(_aggregate_stream, cell, entries))
        while len(aggregates_log) - position["aggregates"] >= (1 if final else RATE.batch_size):
            entries = aggregates_log[position["aggregates"] : position["aggregates"] + RATE.batch_size]
            position["aggregates"] += len(entries)
            partials = [e.item for e in entries if is_partial(e.item)]
            timed("rate", partial(cell.charges.run, partials))

    for chunk in batches(records, batch):
        timed("meter", partial(cell.deliver, chunk))
        pump(final=False)
    pump(final=True)
    return SpeedRun(
        events=len(lines),
        cpu_seconds=dict(cpu),
        handler_cpu_seconds=handler_seconds,
        handler_failures=handler_failures,
        usage_records=len(usage_log),
        aggregate_records=sum(1 for entry in aggregates_log if is_partial(entry.item)),
    )


def _aggregate_stream(cell: Cell, entries: Sequence[StreamEntry]) -> None:
    """What the aggregate function does with a batch of usage stream records: each usage item read
    back (``AcceptedUsage.from_item``, as the trigger reads a stream image), then the job."""
    stream = [StreamRecord(entry.sequence, AcceptedUsage.from_item(entry.item)) for entry in entries]
    cell.aggregator.run(stream)


@contextlib.contextmanager
def own_heap() -> Iterator[None]:
    """Run a timed call as a function's process runs it: the garbage collector walks what the call
    allocates, not the bench's own heap (the fake store standing in for the tables, the stream
    log, every record of the run), which no function process holds. Without this, full
    collections over that heap were ~35-42% of the aggregate and rate figures on 200k events."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@dataclass
class _Context:
    function_name: str = "meterline-bench-meter"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:meterline-bench-meter"
    memory_limit_in_mb: int = METER.memory_mb
    aws_request_id: str = "bench"
    log_group_name: str = "/aws/lambda/meterline-bench-meter"
    log_stream_name: str = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return METER.timeout_seconds * 1000


def _meter_handler_seconds(
    catalog: Catalog, records: Sequence[DeliveredRecord], batch: int
) -> tuple[float, int]:
    """CPU seconds of functions/meter/aws.py's handler over the records, in MSK events of ``batch``
    records, on a fresh in-memory store. Its log and metric lines go to /dev/null, as stdout."""
    events = [_msk_event(chunk) for chunk in batches(records, batch)]
    # the ledger without the cell's stand-in for DynamoDB Streams: the table feeds a stream, not the handler
    store = MemoryStore([table.name for table in TABLES])
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), warnings.catch_warnings():
        # Powertools warns of an invocation with no metric left to flush: not a fault of the bench.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        module = _load_handler("meter")
        module.jobs.use(Jobs(catalog, store, MemoryPublisher()))  # in place of DynamoDB and MSK
        context = _Context()
        responses = []
        seconds = 0.0
        for event in events:
            with own_heap():
                start = time.process_time()
                responses.append(module.handler(event, context))
                seconds += time.process_time() - start
    return seconds, sum(len(response["batchItemFailures"]) for response in responses)


def _msk_event(records: Sequence[DeliveredRecord]) -> dict[str, Any]:
    by_partition: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        delivery = record.delivery
        by_partition.setdefault(f"{delivery.topic}-{delivery.partition}", []).append(
            {
                "topic": delivery.topic,
                "partition": delivery.partition,
                "offset": delivery.offset,
                "timestamp": 1_793_700_000_000 + delivery.offset,
                "timestampType": "CREATE_TIME",
                "key": base64.b64encode(record.key).decode() if record.key is not None else None,
                "value": base64.b64encode(record.value).decode(),
                "headers": [],
            }
        )
    return {
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/meterline/bench",
        "bootstrapServers": "bench.kafka.us-east-1.amazonaws.com:9098",
        "records": by_partition,
    }


def _load_handler(job: str) -> ModuleType:
    path = REPO / "functions" / job / "aws.py"
    return load_function(path, f"meterline_bench_{job}_aws", f"the {job} handler")


# --- the report ------------------------------------------------------------------------------------


def bench_pipeline(
    events: int,
    tenants: int,
    batch: int,
    speed_events: int,
    catalog: Catalog | None = None,
    samples: int = SAMPLES,
) -> dict[str, Any]:
    """Every measurement; the catalog is the bench catalog unless given (the gauge run has its own)."""
    catalog = catalog or bench_catalog()
    units = measure_units(catalog, events_for(catalog, events, tenants), batch)
    speed = measure_speed(catalog, events_for(catalog, speed_events, tenants, seed=7), batch)
    compaction_events = min(speed_events, COMPACTION_EVENTS)
    compaction = measure_compaction(catalog, events_for(catalog, compaction_events, tenants, seed=11), batch)
    return {
        "units": _units_report(units, tenants, batch),
        "speed": _speed_report(speed, batch),
        "compaction": {"events": compaction_events, **compaction},
        "time_weighted": median_run(samples),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
    }


def median_run(samples: int) -> dict[str, Any]:
    """The gauge run, ``GAUGE_RUNS`` times, each in a process of its own (as `meterline bench`
    times its paths: not on the heap of the runs above): the run of median last/first ratio, with
    every run's ratio. CPU time drifts with whatever else the machine runs; the median of a few
    runs is steadier than one."""
    runs = [in_fresh_process(measure_time_weighted, samples) for _ in range(GAUGE_RUNS)]
    runs.sort(key=lambda run: Decimal(run["last_to_first"]))
    return {**runs[len(runs) // 2], "runs_last_to_first": [run["last_to_first"] for run in runs]}


def _ratio(numerator: int | float | Decimal, denominator: int | float | Decimal, places: int = 4) -> Decimal:
    if not denominator:
        return Decimal(0)
    return (Decimal(str(numerator)) / Decimal(str(denominator))).quantize(Decimal(1).scaleb(-places))


def _units_report(run: UnitsRun, tenants: int, batch: int) -> dict[str, Any]:
    accepted = run.report.accepted
    streaming = sum(run.write_units[stage] for stage in ("meter", "aggregate", "rate"))
    naive = naive_write_units(run)
    return {
        "events": run.received,
        "tenants": tenants,
        "meter_batch": batch,
        "aggregate_batch": AGGREGATE.batch_size,
        "rate_batch": RATE.batch_size,
        "seconds": round(run.seconds, 1),
        "accepted": accepted,
        "duplicates": run.report.duplicates,
        "rejected": run.report.rejected,
        "invoices": run.invoices,
        "write_units": run.write_units,
        "write_units_by_table": run.write_units_by_table,
        "read_units": run.read_units,
        "requests": run.requests,
        "requests_per_received_event": {stage: _ratio(run.requests[stage], run.received) for stage in STAGES},
        "read_units_by_table": run.read_units_by_table,
        "wru_per_accepted_event": {
            **{stage: _ratio(run.write_units[stage], accepted) for stage in STAGES},
            "streaming": _ratio(streaming, accepted),
            "total": _ratio(sum(run.write_units.values()), accepted),
        },
        "wru_per_invoice": _ratio(run.write_units["close"], run.invoices),
        "naive": {
            "write_units": naive,
            "wru_per_accepted_event": _ratio(naive, accepted),
            "measurements_per_accepted_event": _ratio(run.measurements, accepted),
        },
        "stored_bytes": run.stored_bytes,
        "usage_item_bytes": _ratio(run.usage_item_bytes, accepted, 1),
        "invoice_message_bytes": _ratio(run.invoice_message_bytes, run.invoices, 0),
        "aggregate_invocations": run.aggregate_invocations,
        "rate_invocations": run.rate_invocations,
        "write_units_check": sum(run.write_units_by_table.values()) == sum(run.write_units.values()),
    }


def _speed_report(run: SpeedRun, batch: int) -> dict[str, Any]:
    jobs = {
        **run.cpu_seconds,
        "cell": sum(run.cpu_seconds.values()),
        "meter_handler": run.handler_cpu_seconds,
    }
    return {
        "events": run.events,
        "meter_batch": batch,
        "handler_failures": run.handler_failures,
        "cpu_seconds": {job: round(seconds, 3) for job, seconds in jobs.items()},
        "events_per_cpu_second": {
            job: round(run.events / seconds) for job, seconds in jobs.items() if seconds
        },
        "gb_seconds_per_million_events": {
            job: _ratio(GB_SECONDS_PER_CPU_SECOND * Decimal(str(seconds)) * MILLION, run.events, 1)
            for job, seconds in jobs.items()
        },
        "invocations_per_million_events": {
            "meter": _ratio(MILLION, batch, 1),
            "aggregate": _ratio(MILLION * run.usage_records, run.events * AGGREGATE.batch_size, 1),
            "rate": _ratio(MILLION * run.aggregate_records, run.events * RATE.batch_size, 1),
        },
    }


def format_pipeline_report(report: dict[str, Any]) -> str:
    units, speed = report["units"], report["speed"]
    per = units["wru_per_accepted_event"]
    lines = [
        f"meterline bench --pipeline: write units on DynamoDB (moto), {units['events']:,} events over "
        f"{units['tenants']:,} tenants, meter batches of {units['meter_batch']}, aggregate "
        f"{units['aggregate_batch']}, rate {units['rate_batch']} ({units['seconds']} s)",
        f"  accepted {units['accepted']:,}, duplicates {units['duplicates']:,}, rejected "
        f"{units['rejected']:,}; {units['invoices']:,} invoices",
        "  write request units (WriteMeter: sizes sent, a lower bound) per accepted event:",
    ]
    for stage in STAGES:
        lines.append(
            f"    {stage:<10} {per[stage]:>8}   ({units['write_units'][stage]:,} WRU,"
            f" {units['read_units'][stage]:,} RRU, {units['requests'][stage]:,} requests)"
        )
    lines += [
        f"    streaming  {per['streaming']:>8}   (meter + aggregate + rate; target ≤ 1.2)",
        f"    total      {per['total']:>8}   (close is per invoice: {units['wru_per_invoice']} WRU each)",
        "  naive design (dedup put + one update per event and meter): "
        f"{units['naive']['wru_per_accepted_event']} WRU per accepted event "
        f"({units['naive']['measurements_per_accepted_event']} meters per event)",
        f"  by table: {units['write_units_by_table']}",
        f"CPU time per job, in-memory store, {speed['events']:,} events, batches of {speed['meter_batch']}:",
    ]
    for job, rate in speed["events_per_cpu_second"].items():
        lines.append(
            f"    {job:<14} {rate:>9,} events per CPU second   "
            f"{speed['gb_seconds_per_million_events'][job]:>8} GB-s per million events at 1,769 MB"
        )
    lines += format_compaction(report["compaction"], report["compaction"]["events"])
    lines += format_time_weighted(report["time_weighted"])
    return "\n".join(lines)


# --- figures for infra/cost/measured.json ----------------------------------------------------------


def cost_figures(report: dict[str, Any], today: date) -> dict[str, dict[str, str]]:
    units, speed = report["units"], report["speed"]
    source = f"meterline bench --pipeline --json, {today.isoformat()}"
    received = units["events"]
    where = f"{received:,} events over {units['tenants']:,} tenants, meter batches of {units['meter_batch']}"

    def figure(value: Decimal, per: str, unit: str, note: str) -> dict[str, str]:
        return {"value": str(value), "per": per, "unit": unit, "source": source, "note": f"{note}; {where}"}

    figures: dict[str, dict[str, str]] = {}
    tables = units["write_units_by_table"]
    reads = Counter[str]()
    for stage in ("meter", "aggregate", "rate"):
        reads.update(units["read_units_by_table"].get(stage, {}))
    for table in ("usage", "aggregates", "charges", "outcomes"):
        figures[f"dynamodb.{table}.write_units"] = figure(
            _ratio(tables.get(table, 0), received, 4),
            "event",
            "write request units",
            "WriteMeter on DynamoDB (moto): item sizes sent, so a lower bound; per received event",
        )
        figures[f"dynamodb.{table}.read_units"] = figure(
            _ratio(reads.get(table, 0), received, 4),
            "event",
            "read request units",
            "strongly consistent reads of the streaming jobs, 4 KB per unit, per received event"
            + (ROLLUP_READS if table == "aggregates" else ""),
        )
    # the units run is too short to seal a window: rollups, heads and fences come from the compaction run
    compaction = Decimal(report["compaction"]["compaction_wru_per_accepted_event"])
    figures["dynamodb.aggregates.write_units"] = figure(
        _ratio(Decimal(tables.get("aggregates", 0)) + compaction * units["accepted"], received, 4),
        "event",
        "write request units",
        "WriteMeter on DynamoDB (moto), plus rollups, heads and fences per accepted event from the"
        f" compaction run ({compaction}); per received event",
    )
    for table in ("usage", "aggregates", "outcomes"):
        figures[f"dynamodb.{table}.stored_bytes"] = figure(
            _ratio(units["stored_bytes"][table], received, 1),
            "event",
            "bytes",
            "item sizes plus 100 bytes per item, per received event",
        )
    invoices = units["invoices"]
    close_reads = units["read_units_by_table"].get("close", {})
    figures["dynamodb.invoices.write_units"] = figure(
        _ratio(tables.get("invoices", 0), invoices, 2),
        "tenant_month",
        "write request units",
        "conditional put and publication-state put per invoice",
    )
    figures["dynamodb.invoices.read_units"] = figure(
        _ratio(close_reads.get("invoices", 0), invoices, 2),
        "tenant_month",
        "read request units",
        "reads of the invoices table while closing",
    )
    figures["dynamodb.invoices.stored_bytes"] = figure(
        _ratio(units["stored_bytes"]["invoices"] * INVOICE_MONTHS_KEPT, invoices, 0),
        "tenant",
        "bytes",
        f"{INVOICE_MONTHS_KEPT} months of invoice items as measured",
    )
    figures["pipeline.invoice_bytes"] = figure(
        units["invoice_message_bytes"],
        "constant",
        "bytes per invoice",
        "billing.invoices message value",
    )
    gb_seconds = speed["gb_seconds_per_million_events"]
    calls = speed["invocations_per_million_events"]
    jobs = {METER: "meter_handler", AGGREGATE: "aggregate", RATE: "rate"}
    for job, timed in jobs.items():
        function = job.job
        waited = (
            units["requests_per_received_event"][function] * MILLION / 1000 * Decimal(job.memory_mb) / 1024
        )
        figures[f"lambda.{function}.requests"] = figure(
            calls[function],
            "million_events",
            "invocations",
            "full trigger batches (topology batch sizes); fewer events per batch at low traffic",
        )
        figures[f"lambda.{function}.gb_seconds"] = figure(
            gb_seconds[timed],
            "million_events",
            "GB-seconds",
            f"CPU time of the {'Lambda handler with Powertools' if function == 'meter' else 'job'} on the "
            "in-memory store x 1769/1024 GB-s per CPU second: a floor, DynamoDB round trips excluded; "
            f"{units['requests_per_received_event'][function]} sequential requests per event add "
            f"{waited:.0f} GB-s per million events per ms of latency at {job.memory_mb} MB",
        )
    return figures


def measured_json(report: dict[str, Any], committed: dict[str, Any], today: date) -> dict[str, Any]:
    """The committed file with every figure the bench measured replaced; the rest unchanged."""
    return {**committed, "figures": {**committed["figures"], **cost_figures(report, today)}}


def print_json(report: dict[str, Any], today: date) -> None:
    body = {"figures": cost_figures(report, today), "bench": report}
    sys.stdout.buffer.write(orjson.dumps(body, option=orjson.OPT_INDENT_2, default=str) + b"\n")


# --- the command -------------------------------------------------------------------------------------

UNITS_EVENTS = 20_000
GAUGE_RUNS = 3
SPEED_EVENTS = 200_000
COMPACTION_EVENTS = 100_000


def run_pipeline_bench(args: argparse.Namespace) -> int:
    events = args.events or UNITS_EVENTS
    speed_events = args.events or SPEED_EVENTS
    samples = args.samples or SAMPLES
    print(
        f"meterline bench --pipeline: {events:,} events on moto, then {speed_events:,} in memory, then"
        f" {samples:,} gauge samples…",
        file=sys.stderr,
    )
    try:
        report = bench_pipeline(events, args.tenants, args.batch, speed_events, samples=samples)
    except GenerateError as error:
        print(f"meterline bench: {error}", file=sys.stderr)
        return 2
    today = datetime.now(UTC).date()
    if args.write_measured:
        committed = orjson.loads(MEASURED_JSON.read_bytes())
        written = measured_json(report, committed, today)
        args.write_measured.write_bytes(orjson.dumps(written, option=orjson.OPT_INDENT_2) + b"\n")
    if args.json:
        print_json(report, today)
    else:
        print(format_pipeline_report(report))
    return 0
