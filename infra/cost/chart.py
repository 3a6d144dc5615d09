"""Cost against volume per stack, as a PNG and an HTML page that embeds it."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from infra.cost.inputs import CostError
from infra.cost.model import StackCost
from infra.cost.report import COMPARISON_COLUMNS, comparison_figures, money

SWEEP_POINTS = 41


def volume_sweep(costs: Sequence[StackCost], points: int = SWEEP_POINTS) -> list[Decimal]:
    """Events per second from 0 to twice the largest stack volume (at least 10/s)."""
    top = max([cost.events_per_second for cost in costs] + [Decimal(5)]) * 2
    return [top * step / (points - 1) for step in range(points)]


def write_charts(costs: Sequence[StackCost], directory: Path) -> tuple[Path, Path]:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CostError(f"{directory}: cannot create the chart directory ({error.strerror})") from None
    png = directory / "cost-vs-volume.png"
    page = directory / "cost-vs-volume.html"
    _plot(costs, png)
    page.write_text(_html(costs, png), encoding="utf-8")
    return png, page


def _plot(costs: Sequence[StackCost], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = volume_sweep(costs)
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
    for cost in costs:
        # Floats only for drawing; every figure printed elsewhere is exact.
        totals = [float(cost.total_usd_month(eps)) for eps in sweep]
        (curve,) = axes.plot([float(eps) for eps in sweep], totals, label=_label(cost))
        axes.plot(
            [float(cost.events_per_second)], [float(cost.total_usd_month())], "o", color=curve.get_color()
        )
        budget = cost.inputs.budget_usd_month
        if budget is not None:
            axes.axhline(float(budget), linestyle=":", linewidth=1, color=curve.get_color())
    axes.set_xlabel("events per second (dot: configured volume; dotted: budget)")
    axes.set_ylabel("USD per month")
    axes.set_title("meterline billing cells: monthly cost against volume")
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _label(cost: StackCost) -> str:
    incomplete = "" if cost.complete else ", incomplete"
    # "\$": a bare dollar sign starts matplotlib's math text.
    return (
        f"{cost.inputs.stack}: \\${money(cost.fixed_usd_month)}/month + "
        f"\\${money(cost.usd_per_million_events, 4)} per M events{incomplete}"
    )


def _html(costs: Sequence[StackCost], png: Path) -> str:
    image = base64.b64encode(png.read_bytes()).decode("ascii")
    header = "".join(f"<th>{html.escape(column)}</th>" for column in COMPARISON_COLUMNS)
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in _cells(cost)) + "</tr>" for cost in costs
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>meterline cost against volume</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:.2em .8em;text-align:right}}
td:first-child,th:first-child{{text-align:left}} table{{border-collapse:collapse}}
tr:nth-child(even){{background:#f4f4f4}}
</style></head><body>
<h1>meterline billing cells: monthly cost against volume</h1>
<img alt="monthly cost against events per second, one line per stack" src="data:image/png;base64,{image}">
<table><thead><tr>{header}</tr></thead>
<tbody>
{rows}
</tbody></table>
<p>Estimates from public list prices (some approximate) and design or measured figures: see
<code>meterline cost --json</code> for each price row's source and date.</p>
</body></html>
"""


def _cells(cost: StackCost) -> tuple[str, ...]:
    status = ("OVER BUDGET" if cost.over_budget else "ok") + ("" if cost.complete else " (incomplete)")
    return (*comparison_figures(cost), status)
