"""`meterline demo`: a generated month through the whole pipeline on this machine, then the
invoices it closed, checked against `meterline rate` on the same events.

The order of things, and why:

1. ``meterline generate`` writes the month; its late events (times in the previous month) are the
   file's tail. The usage and the first half of that tail are produced to ``usage.events`` and
   drained through meter → usage stream → aggregate → aggregates stream → rate.
2. The scheduler closes the previous month as of its end plus the grace: its invoices are issued,
   numbered (the catalog bills from ``billing.first_period``, the previous month).
3. The second half of the late tail is produced: its period is issued, so aggregate bills it in
   the open month's ledger, and the month's close issues amendments of the previous month.
4. The month is closed as of its end plus the grace; the ledgers are read back.

Then it checks itself: every closed period's invoices plus their amendments against
``meterline rate`` on ``events.ndjson``, field by field and tenant by tenant, credits and totals
summed over the months (``reconcile.reconcile``); the grants' drawn amounts; and the ledgers'
counts against the same summary. Any difference is an exit status of 1.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from meterline import report
from meterline.catalog import Catalog, parse_catalog
from meterline.generate import FaultRates, GenerateSpec, LineCounts, generate, line_counts
from meterline.offline import CELL, RateResult, rate_cells
from meterline.periods import Period
from meterline.pipeline.invoices import all_amendments, invoices_by_period
from meterline.pipeline.ledger import closed_periods
from meterline.reconcile import reconcile

from .azure import AzureCell, missing_for_azure
from .azure_triggers import EventHubsTrigger, TimerTrigger
from .cell import CellOptions, LocalCell, PipelineStalledError, cpu_seconds, peak_memory_mb
from .esm import KafkaEventSourceMapping
from .feed import FeedError
from .firestore_emulator import EmulatorUnavailableError, emulator_command
from .gcp import GcpCell
from .gcp_triggers import DocumentCreatedTrigger, PubSubPush, ScheduledDrain
from .ledgers import LedgerCounts, credit_balances, invoice_from_json
from .process import LocalServerError
from .streams import StreamEventSourceMapping

LocalRunError = (LocalServerError, PipelineStalledError, FeedError)
"""What can stop a run short: a server that would not start or answer, a pipeline that stopped moving."""


def unavailable(cloud: str) -> str | None:
    """Why the demo cannot run ``cloud``'s pipeline on this machine, or None."""
    if cloud == "azure":
        return missing_for_azure()
    if cloud == "gcp":
        try:
            emulator_command("127.0.0.1", 0)
        except EmulatorUnavailableError as error:
            return str(error)
    return None


INCOMPLETE = "INCOMPLETE"
"""Written into --out first and removed last: while it is there, the directory holds a run that has
not finished (and, if it was interrupted, never will), and none of the RESULTS."""
RESULTS = ("invoices.json", "report.html", "amendments.json")
"""What a finished run writes last; an earlier run's are removed first, never left beside new events."""
LOGS = (
    "demo.log",
    "demo.broker.log",
    "demo.moto.log",
    "demo.firestore.log",
    "demo.azurite.log",
    "on-failure.ndjson",
)


@dataclass(frozen=True)
class DemoSpec:
    period: Period
    tenants: int
    events: int
    seed: int
    out: Path
    faults: FaultRates = field(default_factory=FaultRates)
    catalog_text: str = ""
    catalog_name: str = "catalog.yaml"
    kafka: str | None = None
    aws_endpoint: str | None = None
    cloud: str = "aws"
    """aws: Lambda handlers on moto's DynamoDB; gcp: Cloud Run entrypoints on the Firestore emulator;
    azure: the Function App on Azurite's tables."""


@dataclass
class DemoRun:
    """What the run found: the exit status follows from it."""

    documents: list[dict[str, Any]]
    differences: list[str]
    amendments: list[dict[str, Any]]
    balances: list[dict[str, Any]]
    events_per_second: float
    seconds_flowing: float
    wall_seconds: float
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.differences


def run(spec: DemoSpec, console: Console) -> DemoRun:
    started = time.monotonic()
    console.file = console.file  # pinned: the cell sends stdout (the handlers' logs) to the log file
    catalog = parse_catalog(spec.catalog_text, spec.catalog_name)
    generating = GenerateSpec(spec.period, spec.tenants, spec.seed, spec.events, spec.faults)
    counts = line_counts(generating)
    values = [line.rstrip(b"\n") for line in generate(catalog, generating)]
    out = spec.out
    out.mkdir(parents=True, exist_ok=True)
    (out / INCOMPLETE).write_text(
        f"meterline demo began at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC and has not finished: it is"
        " running, or it was interrupted or failed. Its events and logs are here; its invoices and report"
        " are written when it finishes, and this file is removed then.\n",
        encoding="utf-8",
    )
    for name in (*RESULTS, *LOGS):
        (out / name).unlink(missing_ok=True)
    (out / "catalog.yaml").write_text(spec.catalog_text, encoding="utf-8")
    (out / "events.ndjson").write_bytes(b"".join(value + b"\n" for value in values))
    before_close = len(values) - counts.late // 2
    options = CellOptions(
        catalog=out / "catalog.yaml",
        log=out / "demo.log",
        on_failure=out / "on-failure.ndjson",
        kafka=spec.kafka,
        aws_endpoint=spec.aws_endpoint,
    )
    previous = spec.period.previous()
    console.rule(
        f"meterline demo · {spec.cloud.upper()} · {spec.period} · {spec.tenants} tenants"
        f" · {spec.events:,} events · seed {spec.seed}"
    )
    with _cell(spec.cloud, options) as cell:
        console.print(cell.describe())
        metering, aggregating = cell.labels
        flowing = 0.0
        with _progress(console) as progress:
            produced = progress.add_task("produced to usage.events", total=len(values))
            metered = progress.add_task(metering, total=len(values))
            # Azure's aggregate reads every record of usage.events; the others, accepted usage only
            aggregates_all = isinstance(cell, AzureCell)
            aggregated = progress.add_task(
                aggregating, total=len(values) if aggregates_all else counts.usage + counts.late
            )

            def tick() -> None:
                progress.update(metered, completed=cell.meter.delivered)
                progress.update(aggregated, completed=cell.usage_stream.delivered)

            for chunk, close_as_of in (
                (values[:before_close], previous),
                (values[before_close:], spec.period),
            ):
                begun = time.monotonic()
                cell.feed.produce(chunk, lambda n: progress.advance(produced, n))
                progress.update(produced, completed=cell.feed.produced)
                cell.drain(tick)
                flowing += time.monotonic() - begun
                now = (close_as_of.end + catalog.billing.grace).isoformat()
                closed = cell.close_periods(now)
                progress.console.print(f"close as of {now}: closed {', '.join(closed) or 'nothing'}")
            cell.drain(tick)
        store = cell.store
        ledger = LedgerCounts(store)
        unbilled_by_period = closed_periods(store)
        invoices = invoices_by_period(store)
        amendments = all_amendments(store)
        stats = _stats(cell)
    stats["peak memory MB"] = peak_memory_mb()
    documents = [
        {
            "period": str(period),
            "invoices": invoices.get(str(period), []),
            "summary": ledger.summary(period).to_json(),
            "unbilled_tenants": ledger.unbilled(catalog, period, unbilled),
        }
        for period, unbilled in sorted(unbilled_by_period.items())
    ]
    balances = credit_balances(catalog, invoices, amendments)
    found = _check(catalog, values, documents, invoices, amendments, balances, ledger)
    wall = time.monotonic() - started
    outcome = DemoRun(documents, found, amendments, balances, len(values) / flowing, flowing, wall, stats)
    (out / "invoices.json").write_bytes(orjson.dumps(documents, option=orjson.OPT_INDENT_2) + b"\n")
    (out / "amendments.json").write_bytes(orjson.dumps(amendments, option=orjson.OPT_INDENT_2) + b"\n")
    from .html import write_report

    write_report(out / "report.html", spec, documents, outcome)
    (out / INCOMPLETE).unlink()
    _show(console, spec, counts, documents, ledger, outcome)
    return outcome


def _cell(cloud: str, options: CellOptions) -> LocalCell | GcpCell | AzureCell:
    if cloud == "gcp":
        return GcpCell(options)
    if cloud == "azure":
        return AzureCell(options)
    return LocalCell(options)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<30}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _check(
    catalog: Catalog,
    values: list[bytes],
    documents: list[dict[str, Any]],
    invoices: dict[str, list[dict[str, Any]]],
    amendments: list[dict[str, Any]],
    balances: list[dict[str, Any]],
    ledger: LedgerCounts,
) -> list[str]:
    found: list[str] = []
    closed = sorted(Period.parse(document["period"]) for document in documents)
    for period in sorted(set(ledger.accepted_by_period) - set(closed)):
        found.append(f"{period}: has accepted usage but was never closed")
    if not closed:
        return [*found, "no period was closed"]
    rated = [result.to_json() for result in rate_cells(catalog, {CELL: values}, closed[0], closed[-1])]
    found.extend(reconcile(rated, invoices, amendments))
    for document, expected in zip(documents, rated, strict=True):
        period = document["period"]
        if document["summary"] != expected["summary"]:
            found.append(f"{period}: ledgers count {document['summary']}, rate counts {expected['summary']}")
        if document["unbilled_tenants"] != expected["unbilled_tenants"]:
            found.append(
                f"{period}: unbilled tenants {document['unbilled_tenants']} ≠ {expected['unbilled_tenants']}"
            )
    rate_drawn = {
        (b["tenant"], b["grant"]): b["drawn"] for document in rated for b in document["credit_balances"]
    }
    for balance in balances:
        want = rate_drawn.get((balance["tenant"], balance["grant"]), "0")
        if Decimal(want) != Decimal(balance["drawn"]):
            found.append(
                f"{balance['tenant']} grant {balance['grant']}: rate drew {want},"
                f" the pipeline {balance['drawn']}"
            )
    if ledger.received != len(values):
        found.append(f"{len(values)} records produced, the ledgers account for {ledger.received}")
    return found


Trigger = (
    KafkaEventSourceMapping
    | StreamEventSourceMapping
    | PubSubPush
    | DocumentCreatedTrigger
    | ScheduledDrain
    | EventHubsTrigger
    | TimerTrigger
)


def _stats(cell: LocalCell | GcpCell | AzureCell) -> dict[str, Any]:
    mappings: dict[str, Trigger] = {
        "meter": cell.meter,
        "aggregate": cell.usage_stream,
        "rate": cell.aggregates_stream,
    }
    return {
        "invocations": {
            job: (calls.count, calls.errors, calls.seconds) for job, calls in cell.runtime.stats.items()
        },
        "retries": {job: mapping.retries for job, mapping in mappings.items()},
        "on-failure batches": sum(mapping.failed_batches for mapping in mappings.values()),
        "consumer lag": cell.lag(),
        "cpu seconds": {
            "demo process (handlers, clients)": cpu_seconds(os.getpid()),
            **{child.name: cpu_seconds(child.pid) for child in cell.children},
        },
    }


def _show(
    console: Console,
    spec: DemoSpec,
    counts: LineCounts,
    documents: list[dict[str, Any]],
    ledger: LedgerCounts,
    outcome: DemoRun,
) -> None:
    for document in documents:
        period = Period.parse(document["period"])
        shown = [invoice_from_json(body, period) for body in document["invoices"]]
        result = RateResult(period, shown, ledger.summary(period), document["unbilled_tenants"])
        if period == spec.period:
            report.render(
                console, result, counts.by_outcome(), title=f"Invoices closed by the pipeline · {period}"
            )
        else:
            console.rule(f"{period} · closed before the rest of its late usage arrived")
            console.print(report.totals_table(shown))
    console.print(_pipeline_table(outcome))
    console.print(report.amendments_table(outcome.amendments))
    console.print(report.balances_table(outcome.balances))
    if outcome.ok:
        periods = " and ".join(document["period"] for document in documents)
        console.print(
            Text(
                f"✓ the pipeline's invoices for {periods} plus their {len(outcome.amendments)} amendments"
                " equal `meterline rate` on events.ndjson to the cent, field by field for every tenant;"
                " the grants' drawdowns and the ledgers reconcile",
                style="green",
            )
        )
    else:
        console.print(Text(f"✗ {len(outcome.differences)} differences from `meterline rate`:", style="red"))
        for line in outcome.differences[:20]:
            console.print(f"  {line}", markup=False)
    console.print(
        f"Written to {spec.out}/: catalog.yaml events.ndjson invoices.json amendments.json report.html"
        " demo.log"
    )
    console.print(f"Wall time {outcome.wall_seconds:,.1f} s · {len(outcome.amendments)} amendments")


def _pipeline_table(outcome: DemoRun) -> Table:
    stats = outcome.stats
    table = Table(title="Pipeline", title_justify="left", box=box.SIMPLE_HEAD, show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("throughput, end to end", f"{outcome.events_per_second:,.0f} events/s")
    table.add_row("producing to drained", f"{outcome.seconds_flowing:,.1f} s")
    for job, (count, errors, seconds) in stats["invocations"].items():
        retried = stats["retries"].get(job, 0)
        table.add_row(
            f"  {job}",
            f"{count:,} invocations · {errors} errors · {retried} retries · {seconds:,.1f} s in the handler",
        )
    table.add_row("batches sent to on-failure", str(stats["on-failure batches"]))
    lag = stats["consumer lag"]
    table.add_row("consumer lag (usage.events)", f"{sum(lag.values())} over {len(lag)} partitions")
    for name, seconds in stats["cpu seconds"].items():
        table.add_row(f"CPU: {name}", "?" if seconds is None else f"{seconds:,.1f} s")
    for name, megabytes in stats["peak memory MB"].items():
        table.add_row(f"peak memory: {name}", f"{megabytes:,.0f} MB")
    table.add_row("wall time", f"{outcome.wall_seconds:,.1f} s")
    return table
