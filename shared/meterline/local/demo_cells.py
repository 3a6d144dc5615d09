"""`meterline demo` over several cells (SPEC §8): each cell meters and aggregates its own share of
the month, for the same customers, on its own cloud's stand-ins, side by side with the others.

1. Each cell's month is generated on its own (the same tenants, a seed per cell: ``seed + i`` for
   the i-th cell) and written to ``events/<cell>.ndjson``; its late tail is split as the
   single-cell demo splits it.
2. Every cell produces its usage and the first half of its late tail, and drains, at once.
3. The rest of every cell's late tail, drained at once.

Cells issue no invoices: no cell's close runs. Then each cell's ledgers are read back and their
counts checked, period by period, against ``meterline rate`` on the cell's own file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table
from rich.text import Text

from meterline.catalog import Catalog, parse_catalog
from meterline.generate import GenerateSpec, LineCounts, generate, line_counts
from meterline.offline import rate_cells
from meterline.periods import Period

from .azure import AzureCell
from .cells import CellName, parse_cells
from .deployment import AnyCell, CellsDriver, Throughput, started_cells
from .ledgers import LedgerCounts

EVENTS_DIR = "events"


@dataclass(frozen=True)
class CellMonth:
    """One cell's generated month: its lines, what they hold, and where the late tail is cut."""

    cell: CellName
    values: list[bytes]
    counts: LineCounts

    @property
    def before_close(self) -> int:
        return len(self.values) - self.counts.late // 2


def split_events(total: int, cells: int) -> list[int]:
    """``total`` events over ``cells`` cells, as evenly as whole events go (the first take the rest)."""
    share, rest = divmod(total, cells)
    return [share + (1 if index < rest else 0) for index in range(cells)]


def generate_cells(catalog: Catalog, spec: Any, cells: list[CellName]) -> list[CellMonth]:
    months = []
    for index, (cell, events) in enumerate(zip(cells, split_events(spec.events, len(cells)), strict=True)):
        generating = GenerateSpec(spec.period, spec.tenants, spec.seed + index, events, spec.faults)
        values = [line.rstrip(b"\n") for line in generate(catalog, generating)]
        months.append(CellMonth(cell, values, line_counts(generating)))
    return months


@dataclass
class CellsRun:
    """What the run found: the exit status follows from it."""

    differences: list[str]
    wall_seconds: float
    throughput: Throughput
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.differences


def run_cells(spec: Any, console: Console) -> CellsRun:
    from .demo import INCOMPLETE, LOGS, RESULTS, _progress, _stats

    started = time.monotonic()
    catalog = parse_catalog(spec.catalog_text, spec.catalog_name)
    cells = parse_cells(spec.cells)
    months = generate_cells(catalog, spec, cells)
    out = spec.out
    out.mkdir(parents=True, exist_ok=True)
    (out / INCOMPLETE).write_text(
        f"meterline demo began at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC and has not finished: it is"
        " running, or it was interrupted or failed. Its events and logs are here; its results are"
        " written when it finishes, and this file is removed then.\n",
        encoding="utf-8",
    )
    for name in (*RESULTS, *LOGS):
        (out / name).unlink(missing_ok=True)
    (out / "catalog.yaml").write_text(spec.catalog_text, encoding="utf-8")
    (out / EVENTS_DIR).mkdir(exist_ok=True)
    for month in months:
        (out / EVENTS_DIR / f"{month.cell}.ndjson").write_bytes(b"".join(v + b"\n" for v in month.values))
    console.rule(
        f"meterline demo · {len(cells)} cells ({', '.join(map(str, cells))}) · {spec.period}"
        f" · {spec.tenants} tenants · {spec.events:,} events · seed {spec.seed}"
    )
    throughput = Throughput()
    by_name = {str(month.cell): month for month in months}
    with started_cells(cells, out / "catalog.yaml", out) as running:
        for name, cell in running.items():
            console.print(f"{name}: {cell.describe()}")
            throughput.watch(name, cell)
        driver = CellsDriver(running, throughput)
        with _progress(console) as progress:
            bars = _bars(progress, running, by_name)

            def tick() -> None:
                for name, cell in running.items():
                    produced, metered, aggregated = bars[name]
                    progress.update(produced, completed=cell.feed.produced)
                    progress.update(metered, completed=cell.meter.delivered)
                    progress.update(aggregated, completed=cell.usage_stream.delivered)

            for first in (True, False):

                def step(name: str, cell: AnyCell, first: bool = first) -> None:
                    month = by_name[name]
                    chunk = (
                        month.values[: month.before_close] if first else month.values[month.before_close :]
                    )
                    cell.feed.produce(chunk)
                    cell.drain(lambda: None)

                driver.run(step, tick)
        ledgers = {name: LedgerCounts(cell.store) for name, cell in running.items()}
        stats = {name: _stats(cell) for name, cell in running.items()}
    found = _check(catalog, spec.period, months, ledgers)
    outcome = CellsRun(found, time.monotonic() - started, throughput, stats=stats)
    outcome.summaries = {
        name: {str(p): ledgers[name].summary(p).to_json() for p in (spec.period.previous(), spec.period)}
        for name in running
    }
    (out / INCOMPLETE).unlink()
    _show(console, outcome)
    return outcome


def _bars(
    progress: Progress, running: dict[str, AnyCell], months: dict[str, CellMonth]
) -> dict[str, tuple[TaskID, ...]]:
    bars: dict[str, tuple[TaskID, ...]] = {}
    for name, cell in running.items():
        month = months[name]
        metering, aggregating = cell.labels
        total = len(month.values)
        aggregates_all = isinstance(cell, AzureCell)  # Azure's aggregate reads every record
        bars[name] = (
            progress.add_task(f"{name} produced", total=total),
            progress.add_task(f"{name} {metering.split(' (')[0]}", total=total),
            progress.add_task(
                f"{name} {aggregating.split(' (')[0]}",
                total=total if aggregates_all else month.counts.usage + month.counts.late,
            ),
        )
    return bars


def _check(
    catalog: Catalog, period: Period, months: list[CellMonth], ledgers: dict[str, LedgerCounts]
) -> list[str]:
    """Each cell's ledgers count what ``meterline rate`` counts on the cell's file, month by month."""
    found = []
    previous = period.previous()
    for month in months:
        name = str(month.cell)
        ledger = ledgers[name]
        rated = rate_cells(catalog, {name: month.values}, previous, period)
        for result in rated:
            counted, expected = ledger.summary(result.period).to_json(), result.summary.to_json()
            if counted != expected:
                found.append(f"{name} {result.period}: the ledgers count {counted}, rate counts {expected}")
        if ledger.received != len(month.values):
            found.append(
                f"{name}: {len(month.values)} records produced, the ledgers account for {ledger.received}"
            )
    return found


def _show(console: Console, outcome: CellsRun) -> None:
    console.print(throughput_table(outcome.throughput, outcome.stats))
    if outcome.ok:
        console.print(
            Text(
                "✓ every cell's ledgers count what `meterline rate` counts on its events, month by month",
                style="green",
            )
        )
    else:
        console.print(Text(f"✗ {len(outcome.differences)} differences from `meterline rate`:", style="red"))
        for line in outcome.differences[:20]:
            console.print(f"  {line}", markup=False)
    console.print(f"Wall time {outcome.wall_seconds:,.1f} s")


def throughput_table(throughput: Throughput, stats: dict[str, dict[str, Any]]) -> Table:
    """Per cell and stage: records delivered, the seconds the stage moved, records per second, and
    the seconds its function ran (in the handler)."""
    table = Table(title="Throughput per stage", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("cell", "stage", "records", "seconds", "records/s", "in the handler"):
        table.add_column(column, justify="left" if column in ("cell", "stage") else "right")
    for name, stages in throughput.stages.items():
        invocations = stats.get(name, {}).get("invocations", {})
        for job, stage in stages.items():
            handler = invocations.get(job)
            table.add_row(
                name,
                job,
                f"{stage.delivered:,}",
                f"{stage.seconds:,.1f}",
                f"{stage.per_second:,.0f}",
                "" if handler is None else f"{handler[2]:,.1f} s",
            )
    return table
