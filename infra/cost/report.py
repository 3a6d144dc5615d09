"""The cost review as JSON (for tools) and as rich tables (for people)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from infra.cost.model import CONVENTIONS, MILLION, StackCost
from infra.cost.prices import ReferencePrice


@dataclass(frozen=True, slots=True)
class Assumption:
    name: str
    value: str
    source: str


def assumptions(cost: StackCost) -> list[Assumption]:
    """Every input the figures rest on, with where it came from."""
    usage = cost.inputs.usage
    config = f"stack config: cost_inputs.usage of {cost.inputs.origin}"
    volume_source = "--events-per-second (what-if)" if cost.what_if else config
    rows = [
        Assumption("events per second", _plain(cost.events_per_second), volume_source),
        Assumption("average event size", f"{_plain(usage.avg_event_bytes)} bytes", config),
        Assumption("tenants", _plain(usage.tenants), config),
        *(
            Assumption(f"retention {topic}", f"{_plain(hours)} h", config)
            for topic, hours in sorted(usage.retention_hours.items())
        ),
        *(Assumption(name, value, source) for name, value, source in CONVENTIONS),
    ]
    for figure in cost.figures_used:
        value = f"{_plain(figure.value)} {figure.unit}".strip()
        if figure.per != "constant":
            value += f" per {figure.per.replace('_', ' ')}"
        source = figure.source + (f" — {figure.note}" if figure.note else "")
        rows.append(Assumption(figure.name, value, source))
    return rows


def effective_usd_per_million(cost: StackCost) -> Decimal | None:
    """All-in dollars per million events at the stack's volume (fixed costs spread over the events)."""
    millions = cost.events_per_month / MILLION
    return cost.total_usd_month() / millions if millions else None


def deployment(costs: Sequence[StackCost]) -> dict[str, Any] | None:
    """Every stack's monthly cost over the events the cells meter, when a billing home is among them:
    the cost per million events of the whole deployment, the home's share included (SPEC §8)."""
    homes = [cost for cost in costs if cost.inputs.stack.startswith("home-")]
    cells = [cost for cost in costs if not cost.inputs.stack.startswith("home-")]
    events = sum((cost.events_per_month for cost in cells), Decimal(0))
    if not homes or events <= 0:
        return None
    total = sum((cost.total_usd_month() for cost in costs), Decimal(0))
    home = sum((cost.total_usd_month() for cost in homes), Decimal(0))
    return {
        "cells": len(cells),
        "usd_month": money(total),
        "usd_per_million_events": money(total / events * 1_000_000, 4),
        "home_usd_per_million_events": money(home / events * 1_000_000, 4),
    }


def to_json(costs: Sequence[StackCost], references: Sequence[ReferencePrice]) -> dict[str, Any]:
    return {
        "complete": all(cost.complete for cost in costs),
        "deployment": deployment(costs),
        "stacks": [_stack_json(cost) for cost in costs],
        "references": [
            {
                "vendor": ref.vendor,
                "plan": ref.plan,
                "usd_per_million_events": _plain(ref.usd_per_million_events),
                "note": ref.note,
                "source": ref.source,
                "as_of": ref.as_of,
            }
            for ref in references
        ],
    }


def _stack_json(cost: StackCost) -> dict[str, Any]:
    inputs = cost.inputs
    effective = effective_usd_per_million(cost)
    return {
        "stack": inputs.stack,
        "cloud": inputs.cloud,
        "region": inputs.region,
        "source": inputs.origin,
        "events_per_second": _plain(cost.events_per_second),
        "events_per_month": _plain(cost.events_per_month),
        "what_if": cost.what_if,
        "fixed_usd_month": money(cost.fixed_usd_month),
        "usd_per_million_events": money(cost.usd_per_million_events, 4),
        "total_usd_month": money(cost.total_usd_month()),
        "all_in_usd_per_million_events": None if effective is None else money(effective, 4),
        "budget_usd_month": None if inputs.budget_usd_month is None else money(inputs.budget_usd_month),
        "over_budget": cost.over_budget,
        "complete": cost.complete,
        "by_service": [
            {
                "service": service,
                "fixed_usd_month": fixed,
                "usd_per_million_events": variable,
                "usd_month": total,
            }
            for service, fixed, variable, total in _service_rows(cost)
        ],
        "lines": [
            {
                "service": line.service,
                "item": line.item,
                "unit": line.price.unit,
                "price_usd": _plain(line.price.price_usd),
                "price_per": _plain(line.price.per),
                "fixed_units_month": _plain(line.fixed_units, 6),
                "units_per_million_events": _plain(line.units_per_million, 6),
                "fixed_usd_month": money(line.fixed_usd, 6),
                "usd_per_million_events": money(line.usd_per_million, 6),
                "price_basis": line.price.basis,
                "price_source": line.price.source,
                "price_as_of": line.price.as_of,
                "note": line.note,
            }
            for line in cost.lines
        ],
        "unpriced": [{"resource": entry.resource, "reason": entry.reason} for entry in cost.unpriced],
        "assumptions": [{"name": a.name, "value": a.value, "source": a.source} for a in assumptions(cost)],
    }


def render(
    console: Console, costs: Sequence[StackCost], references: Sequence[ReferencePrice], detail: bool = False
) -> None:
    """The comparison of the stacks first, then each stack's total in one line (and what it could not
    price); with `detail`, each stack's assumptions, cost by service and cost lines after that."""
    console.print(comparison_table(costs))
    whole = deployment(costs)
    if whole is not None:
        console.print(
            f"[bold]deployment[/] ({whole['cells']} cells and the billing home): "
            f"${whole['usd_month']}/month, ${whole['usd_per_million_events']} per million events, "
            f"of which the home ${whole['home_usd_per_million_events']}"
        )
    for cost in costs:
        console.print(f"[bold]{cost.inputs.stack}[/]: {_summary(cost)}")
        if cost.unpriced:
            console.print(_unpriced_table(cost))
    for ref in references:
        console.print(
            f"Reference: {ref.vendor} {ref.plan} lists ${_plain(ref.usd_per_million_events)} "
            "per million events "
            f"({ref.note}); source: {ref.source}, as of {ref.as_of}."
        )
    if not all(cost.complete for cost in costs):
        console.print("[bold yellow]Totals are INCOMPLETE: see the unpriced items above.[/]")
    if not detail:
        console.print("Each stack's assumptions, cost by service and cost lines: --detail (or --json).")
        return
    for cost in costs:
        _render_stack(console, cost)


def _render_stack(console: Console, cost: StackCost) -> None:
    inputs = cost.inputs
    volume = "what-if" if cost.what_if else "configured"
    console.rule(
        f"[bold]{inputs.stack}[/] ({inputs.cloud} {inputs.region}) at {_plain(cost.events_per_second)} "
        f"events/s, {volume}"
    )
    table = Table(title="Assumptions", title_justify="left", show_lines=False)
    for column in ("assumption", "value", "source"):
        table.add_column(column)
    for assumption in assumptions(cost):
        table.add_row(assumption.name, assumption.value, assumption.source)
    console.print(table)

    services = Table(title="Cost by service", title_justify="left")
    services.add_column("service")
    services.add_column("fixed $/month", justify="right")
    services.add_column("$ per million events", justify="right")
    services.add_column(f"$/month at {_plain(cost.events_per_second)}/s", justify="right")
    for row in _service_rows(cost):
        services.add_row(*row)
    services.add_row(
        "[bold]total[/]",
        f"[bold]{money(cost.fixed_usd_month)}[/]",
        f"[bold]{money(cost.usd_per_million_events, 4)}[/]",
        f"[bold]{money(cost.total_usd_month())}[/]",
    )
    console.print(services)
    console.print(_lines_table(cost))
    approx = sum(1 for line in cost.lines if line.price.basis == "approx")
    console.print(
        f"{len(cost.lines)} cost lines; {approx} priced from approximate rows "
        "(see --json for each row's source)."
    )


def _unpriced_table(cost: StackCost) -> Table:
    unpriced = Table(title="[bold yellow]Unpriced (not counted in the totals)[/]", title_justify="left")
    unpriced.add_column("item")
    unpriced.add_column("reason")
    for entry in cost.unpriced:
        unpriced.add_row(entry.resource, entry.reason)
    return unpriced


def _service_rows(cost: StackCost) -> list[tuple[str, str, str, str]]:
    """Service rows whose displayed amounts add up to the displayed totals."""
    rows = cost.by_service()
    columns = (
        rounded_parts([row[1] for row in rows]),
        rounded_parts([row[2] for row in rows], 4),
        rounded_parts([row[3] for row in rows]),
    )
    fixed, variable, total = columns
    return [(row[0], fixed[i], variable[i], total[i]) for i, row in enumerate(rows)]


def _summary(cost: StackCost) -> str:
    text = (
        f"Fixed ${money(cost.fixed_usd_month)}/month"
        f" + ${money(cost.usd_per_million_events, 4)} per million events"
        f" = ${money(cost.total_usd_month())}/month"
        f" at {_plain(cost.events_per_month / MILLION, 1)}M events/month"
    )
    budget = cost.inputs.budget_usd_month
    if budget is not None:
        state = "[bold red]OVER[/]" if cost.over_budget else "within"
        text += f"; budget ${money(budget)}: {state}"
    return text + ("" if cost.complete else " [bold yellow](incomplete)[/]")


def _lines_table(cost: StackCost) -> Table:
    table = Table(title="Cost lines", title_justify="left")
    for column in (
        "service",
        "item",
        "units/month",
        "units per M events",
        "unit price",
        "fixed $",
        "$ per M",
        "basis",
    ):
        table.add_column(column, justify="right" if column not in ("service", "item", "basis") else "left")
    for line in cost.lines:
        price = f"{_plain(line.price.price_usd)} per {_plain(line.price.per)} {line.price.unit}"
        table.add_row(
            line.service,
            line.item + (f" ({line.note})" if line.note else ""),
            _plain(line.fixed_units, 3),
            _plain(line.units_per_million, 3),
            price,
            money(line.fixed_usd),
            money(line.usd_per_million, 4),
            line.price.basis,
        )
    return table


COMPARISON_COLUMNS = (
    "stack",
    "events/s",
    "fixed $/month",
    "$ per M events",
    "total $/month",
    "all-in $ per M",
    "budget $/month",
    "status",
)


def comparison_figures(cost: StackCost) -> tuple[str, ...]:
    """A stack's row of the comparison, every column but the status (each renderer styles that)."""
    effective = effective_usd_per_million(cost)
    budget = cost.inputs.budget_usd_month
    return (
        cost.inputs.stack,
        _plain(cost.events_per_second),
        money(cost.fixed_usd_month),
        money(cost.usd_per_million_events, 4),
        money(cost.total_usd_month()),
        "-" if effective is None else money(effective, 4),
        "-" if budget is None else money(budget),
    )


def comparison_table(costs: Sequence[StackCost]) -> Table:
    table = Table(title="Billing cells compared", title_justify="left")
    for column in COMPARISON_COLUMNS:
        table.add_column(column, justify="left" if column in ("stack", "status") else "right")
    for cost in costs:
        status = "[bold red]OVER BUDGET[/]" if cost.over_budget else "ok"
        if not cost.complete:
            status += " [yellow](incomplete)[/]"
        table.add_row(*comparison_figures(cost), status)
    return table


def rounded_parts(parts: Sequence[Decimal], places: int = 2) -> list[str]:
    """Parts rounded so that they add up to their rounded sum (largest remainder); parts are not negative."""
    step = Decimal(1).scaleb(-places)
    target = sum(parts, Decimal(0)).quantize(step, rounding=ROUND_HALF_UP)
    floors = [part.quantize(step, rounding=ROUND_FLOOR) for part in parts]
    spare = int((target - sum(floors, Decimal(0))) / step)
    by_remainder = sorted(range(len(parts)), key=lambda i: (floors[i] - parts[i], i))
    for index in by_remainder[:spare]:
        floors[index] += step
    return [str(part) for part in floors]


def money(amount: Decimal, places: int = 2) -> str:
    """Rounded half away from zero, for display: estimates are never invoiced."""
    return str(amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _plain(number: Decimal, places: int | None = None) -> str:
    if places is not None:
        number = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = format(number.normalize(), "f")
    return text
