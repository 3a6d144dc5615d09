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
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from meterline import report
from meterline.catalog import Catalog, parse_catalog
from meterline.generate import GenerateSpec, LineCounts, generate, line_counts
from meterline.offline import RateResult
from meterline.periods import Period
from meterline.pipeline.invoices import all_amendments, invoices_by_period
from meterline.pipeline.ledger import closed_periods

from .azure import AzureCell
from .breakdown import (
    EVERY_CELL,
    CellQuantities,
    applied_books,
    attributable,
    cell_quantities,
    market_breakdown,
)
from .cells import CellName, parse_cells
from .demo import DemoRun, show_verdict
from .deployment import AnyCell, CellsDriver, Throughput, started_cells
from .home import HomeError, LocalHome
from .ledgers import LedgerCounts, credit_balances, invoice_from_json

EVENTS_DIR = "events"
ByPeriod = dict[str, CellQuantities]
"""Each cell's quantities per line of a period's invoices, by the period's name."""


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
class HomeStep:
    """A step of the schedules (every cell's publish, the home's jobs): what it did, how long it took."""

    where: str
    what: str
    count: int
    seconds: float


def run_cells(spec: Any, console: Console) -> DemoRun:
    from .demo import _check, _progress, _stats, begin_out, issued_documents, write_results

    started = time.monotonic()
    console.file = console.file  # pinned: the cells send stdout (the handlers' logs) to the log file
    catalog = parse_catalog(spec.catalog_text, spec.catalog_name)
    cells = parse_cells(spec.cells)
    months = generate_cells(catalog, spec, cells)
    out = begin_out(spec)
    (out / EVENTS_DIR).mkdir(exist_ok=True)
    for month in months:
        (out / EVENTS_DIR / f"{month.cell}.ndjson").write_bytes(b"".join(v + b"\n" for v in month.values))
    console.rule(
        f"meterline demo · {len(cells)} cells and a billing home · {spec.period}"
        f" · {spec.tenants} tenants · {spec.events:,} events · seed {spec.seed}"
    )
    throughput = Throughput()
    home_steps: list[HomeStep] = []
    by_name = {str(month.cell): month for month in months}
    flowing = 0.0
    with (
        LocalHome(out / "catalog.yaml", out / "demo.log", [str(cell) for cell in cells]) as home,
        started_cells(cells, out / "catalog.yaml", out, home.exchange) as running,
    ):
        console.print(f"home: {home.describe()}")
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

            for first, close_as_of in ((True, spec.period.previous()), (False, spec.period)):

                def step(name: str, cell: AnyCell, first: bool = first) -> None:
                    month = by_name[name]
                    cut = month.before_close
                    cell.feed.produce(month.values[:cut] if first else month.values[cut:])
                    cell.drain(lambda: None)

                begun = time.monotonic()
                driver.run(step, tick)
                flowing += time.monotonic() - begun
                now = close_as_of.end + catalog.billing.grace
                closed = _close(home, driver, now, home_steps)
                progress.console.print(
                    f"as of {now.isoformat()}: the home issued {', '.join(closed) or 'nothing'}"
                )
        ledger = LedgerCounts(*(cell.store for cell in running.values()))
        stats = {name: _stats(cell) for name, cell in running.items()}
        unbilled_by_period = closed_periods(home.store)
        invoices = invoices_by_period(home.store)
        amendments = all_amendments(home.store)
        announced = len(home.publisher.messages)
        exchange = home.exchange()
        books = {
            period: applied_books(catalog, home.store, exchange, by_name, period)
            for period in unbilled_by_period
        }
    documents = issued_documents(catalog, ledger, unbilled_by_period, invoices)
    balances = credit_balances(catalog, invoices, amendments)
    usage = {name: month.values for name, month in by_name.items()}
    found = _check(catalog, usage, documents, invoices, amendments, balances, ledger)
    wall = time.monotonic() - started
    produced = sum(len(values) for values in usage.values())
    outcome = DemoRun(documents, found, amendments, balances, produced / flowing, flowing, wall, {})
    outcome.stats = {"cells": stats, "throughput": throughput, "home": home_steps, "announced": announced}
    quantities = {
        document["period"]: attributable(
            document["invoices"],
            cell_quantities(
                catalog, books[Period.parse(document["period"])], Period.parse(document["period"])
            ),
        )
        for document in documents
    }
    write_results(spec, outcome, markets_html(documents, quantities))
    _show(console, spec, catalog, documents, ledger, outcome, quantities)
    return outcome


def _close(home: LocalHome, driver: CellsDriver, now: datetime, steps: list[HomeStep]) -> list[str]:
    """The schedules at ``now``: every cell publishes (its new partials, and the final marker of
    each period past its grace), then the home ingests what was announced, rates and closes."""
    at = now.isoformat()
    published: dict[str, int] = {}

    def publish(name: str, cell: AnyCell) -> None:
        started = time.monotonic()
        published[name] = int(cell.publish(at)["published"])
        steps.append(HomeStep(name, "publish (statements)", published[name], time.monotonic() - started))

    driver.run(publish, lambda: None, sample=False)
    begun = time.monotonic()
    applied = home.notify()
    steps.append(HomeStep("home", "ingest (statements)", applied, time.monotonic() - begun))
    begun = time.monotonic()
    home.rate(now)
    steps.append(HomeStep("home", "rate (every open period)", 1, time.monotonic() - begun))
    begun = time.monotonic()
    result = home.close(now)
    steps.append(HomeStep("home", "close (periods issued)", len(result["closed"]), time.monotonic() - begun))
    if result.get("issued_without"):
        raise HomeError(
            f"the home issued without cells {result['issued_without']}: they never reported final"
        )
    closed: list[str] = result["closed"]
    return closed


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


def _show(
    console: Console,
    spec: Any,
    catalog: Catalog,
    documents: list[dict[str, Any]],
    ledger: LedgerCounts,
    outcome: DemoRun,
    quantities: ByPeriod,
) -> None:
    for document in documents:
        period = Period.parse(document["period"])
        shown = [invoice_from_json(body, period) for body in document["invoices"]]
        result = RateResult(period, shown, ledger.summary(period), document["unbilled_tenants"])
        if period == spec.period:
            title = f"One invoice per customer for the whole deployment · {period}"
            report.render(console, result, {}, title=title)
        else:
            console.rule(f"{period} · issued before the rest of its late usage arrived")
            console.print(report.totals_table(shown))
    console.print(markets_table(documents, spec.period, quantities))
    console.print(
        throughput_table(outcome.stats["throughput"], outcome.stats["cells"], outcome.stats["home"])
    )
    console.print(report.amendments_table(outcome.amendments))
    console.print(report.balances_table(outcome.balances))
    cells = ", ".join(f"{EVENTS_DIR}/{name}.ndjson" for name in outcome.stats["throughput"].stages)
    periods = " and ".join(document["period"] for document in documents)
    show_verdict(
        console,
        outcome,
        f"the home's invoices for {periods} plus their {len(outcome.amendments)} amendments equal"
        f" `meterline rate --usage CELL=FILE ...` over {cells} to the cent, field by field for"
        " every tenant; the grants' drawdowns and every cell's ledgers reconcile",
    )
    console.print(
        f"Written to {spec.out}/: catalog.yaml {EVENTS_DIR}/<cell>.ndjson invoices.json amendments.json"
        " report.html demo.log"
    )
    console.print(
        f"Wall time {outcome.wall_seconds:,.1f} s · {len(outcome.amendments)} amendments"
        f" · {outcome.stats['announced']} messages announced by the home"
    )


def markets_table(documents: list[dict[str, Any]], period: Period, quantities: ByPeriod) -> Table:
    table = Table(
        title=f"{period} · each invoice's lines by the region of their usage (subtotal before discounts;"
        " a line of a meter not grouped by region is split by each cell's quantity, see report.html)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    document = next((d for d in documents if d["period"] == str(period)), None)
    invoices = document["invoices"] if document else []
    breakdowns = [market_breakdown(invoice, quantities.get(str(period))) for invoice in invoices]
    markets = sorted({m for amounts in breakdowns for m in amounts} - {EVERY_CELL})
    for column in ("tenant", "currency", *markets, EVERY_CELL, "subtotal"):
        table.add_column(column, justify="left" if column in ("tenant", "currency") else "right")
    for invoice, amounts in zip(invoices, breakdowns, strict=True):
        table.add_row(
            invoice["tenant"],
            invoice["currency"],
            *(f"{amounts.get(market, Decimal(0)):,.2f}" for market in (*markets, EVERY_CELL)),
            f"{Decimal(invoice['subtotal']):,.2f}",
        )
    return table


def markets_html(documents: list[dict[str, Any]], quantities: ByPeriod) -> str:
    import html

    parts = [
        "<h2>Each invoice by region</h2>",
        f"<p>{html.escape(BREAKDOWN_NOTE)}</p>",
    ]
    for document in documents:
        invoices = document["invoices"]
        breakdowns = [market_breakdown(invoice, quantities.get(document["period"])) for invoice in invoices]
        markets = sorted({m for amounts in breakdowns for m in amounts} - {EVERY_CELL})
        head = "".join(f"<th>{html.escape(m)}</th>" for m in ("tenant", *markets, EVERY_CELL, "subtotal"))
        rows = []
        for invoice, amounts in zip(invoices, breakdowns, strict=True):
            cells = "".join(f"<td>{amounts.get(m, Decimal(0)):,.2f}</td>" for m in (*markets, EVERY_CELL))
            rows.append(
                f"<tr><td>{html.escape(invoice['tenant'])}</td>{cells}<td>{Decimal(invoice['subtotal']):,.2f}</td></tr>"
            )
        parts.append(f"<h3>{document['period']}</h3><table><tr>{head}</tr>{''.join(rows)}</table>")
    return "\n".join(parts)


BREAKDOWN_NOTE = (
    "A line grouped by region is that region's. A line of a meter that sums, counts or time-weights"
    " is split by each cell's quantity in the statements the home applied to the month's invoice,"
    " when those add up exactly to the line's quantity: each part rounded down to the cent, the"
    " cents left over to the largest remainders, so the parts add up to the line. Every other line"
    " (a max, a distinct count, a latest value, a tenant with more than one invoice in the month)"
    " stays under 'every cell'. A report, not part of any invoice."
)


def throughput_table(throughput: Throughput, stats: dict[str, dict[str, Any]], home: list[HomeStep]) -> Table:
    """Per cell and stage: records delivered, the seconds the stage moved, records per second, and
    the seconds its function ran (in the handler); then the home's steps."""
    table = Table(title="Throughput per stage", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("where", "stage", "records", "seconds", "records/s", "in the handler"):
        table.add_column(column, justify="left" if column in ("where", "stage") else "right")
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
    for step in home:
        rate = step.count / step.seconds if step.seconds else 0.0
        table.add_row(step.where, step.what, f"{step.count:,}", f"{step.seconds:,.1f}", f"{rate:,.0f}", "")
    return table
