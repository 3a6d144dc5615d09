"""report.html: the closed invoices, how the events reconcile, and charts of revenue and usage by
tenant and product (inline SVG from matplotlib), for a person rather than a JSON reader.

Chart values are floats: they are drawn, never summed into an amount; every figure in a table is
the invoice's own decimal text.
"""

from __future__ import annotations

import html
import io
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .demo import DemoRun, DemoSpec

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{padding:.2rem .6rem;border-bottom:1px solid #ddd}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.ok{color:#080}.bad{color:#b00}
details{margin:.3rem 0}summary{cursor:pointer}h2{margin-top:2.5rem}.adj{color:#a50}
"""


def write_report(path: Path, spec: DemoSpec, documents: list[dict[str, Any]], outcome: DemoRun) -> None:
    main = next((d for d in documents if d["period"] == str(spec.period)), None)
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>meterline demo {spec.period}</title><style>{STYLE}</style>",
        f"<h1>meterline demo · {spec.period}</h1>",
        f"<p>{spec.tenants} tenants · {spec.events:,} events · seed {spec.seed} · "
        f"{outcome.events_per_second:,.0f} events/s end to end</p>",
        _verdict(outcome),
    ]
    if main is not None:
        parts += [
            "<h2>Revenue by tenant and product</h2>",
            *(_svg(_revenue_chart(currency, invoices)) for currency, invoices in _by_currency(main).items()),
            "<h2>Usage by tenant and product</h2>",
            _svg(_usage_chart(main)),
            "<h2>Events</h2>",
            _summary_table(main["summary"]),
            f"<h2>Invoices · {spec.period}</h2>",
            *(_invoice(invoice) for invoice in main["invoices"]),
        ]
    for document in documents:
        if document is not main:
            parts += [f"<h2>Invoices · {document['period']}</h2>", *map(_invoice, document["invoices"])]
    parts += [
        f"<h2>Amendments · {len(outcome.amendments)}</h2>",
        "<p>Late usage of an issued month: the month re-rated in full, less what was issued for it.</p>",
        *map(_amendment, outcome.amendments),
        "<h2>Credit grants</h2>",
        _balances(outcome.balances),
    ]
    path.write_text("\n".join(parts), encoding="utf-8")


def _verdict(outcome: DemoRun) -> str:
    if outcome.ok:
        return "<p class='ok'>✓ equal to <code>meterline rate</code> on events.ndjson, to the cent</p>"
    items = "".join(f"<li>{html.escape(line)}</li>" for line in outcome.differences[:50])
    count = len(outcome.differences)
    return f"<p class='bad'>✗ {count} differences from <code>meterline rate</code></p><ul>{items}</ul>"


def _by_currency(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for invoice in document["invoices"]:
        grouped[invoice["currency"]].append(invoice)
    return dict(sorted(grouped.items()))


def _revenue_chart(currency: str, invoices: list[dict[str, Any]]) -> Any:
    from matplotlib.figure import Figure

    tenants = [invoice["tenant"] for invoice in invoices]
    products = sorted({line["meter"] for invoice in invoices for line in invoice["lines"]})
    figure = Figure(figsize=(10, 0.35 * len(tenants) + 1.6))
    axes = figure.subplots()
    left = [0.0] * len(tenants)
    colours = _colours(len(products))
    for product, colour in zip(products, colours, strict=True):
        widths = [
            float(
                sum(
                    (Decimal(line["amount"]) for line in invoice["lines"] if line["meter"] == product),
                    Decimal(0),
                )
            )
            for invoice in invoices
        ]
        axes.barh(tenants, widths, left=left, label=product, color=colour)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    axes.invert_yaxis()
    axes.set_xlabel(f"charges before discounts ({currency})")
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return figure


def _usage_chart(document: dict[str, Any]) -> Any:
    from matplotlib.figure import Figure

    invoices = document["invoices"]
    tenants = [invoice["tenant"] for invoice in invoices]
    quantities: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for invoice in invoices:
        for line in invoice["lines"]:
            quantities[line["meter"]][invoice["tenant"]] += float(Decimal(line["quantity"]))
    products = sorted(quantities)
    shares = [
        [quantities[p][t] / total if (total := sum(quantities[p].values())) else 0.0 for p in products]
        for t in tenants
    ]
    figure = Figure(figsize=(10, 0.35 * len(tenants) + 2.5))
    axes = figure.subplots()
    image = axes.imshow(shares or [[0.0]], aspect="auto", cmap="Blues")
    axes.set_yticks(range(len(tenants)), tenants, fontsize=8)
    axes.set_xticks(range(len(products)), products, rotation=35, ha="right", fontsize=8)
    figure.colorbar(image, ax=axes, label="tenant's share of the product's usage")
    figure.tight_layout()
    return figure


def _colours(count: int) -> list[Any]:
    from matplotlib import colormaps

    palette = colormaps["tab20"]
    return [palette(i % 20) for i in range(count)]


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _summary_table(summary: dict[str, Any]) -> str:
    rows = [("received", summary["received"]), ("accepted", summary["accepted"])]
    rows += [("duplicates", summary["duplicates"]), ("rejected", summary["rejected"])]
    rows += [(f"  rejected: {reason}", n) for reason, n in summary["rejected_by_reason"].items() if n]
    rows += [("out of period (late)", summary["out_of_period"])]
    body = "".join(f"<tr><td>{html.escape(name)}</td><td class=n>{count:,}</td></tr>" for name, count in rows)
    return f"<table>{body}</table>"


def _invoice(invoice: dict[str, Any]) -> str:
    rows = []
    for line in invoice["lines"]:
        group = ", ".join(f"{k}={v}" for k, v in line["group"].items())
        rows.append(
            f"<tr><td>{html.escape(line['meter'])}</td><td>{html.escape(group)}</td>"
            f"<td class=n>{line['quantity']}</td><td class=n>{line['amount']}</td></tr>"
        )
    for label in ("subtotal", "discount", "commitment_true_up", "credits_applied", "total"):
        if label in ("subtotal", "total") or Decimal(invoice[label]):
            rows.append(
                f"<tr><th colspan=3>{label.replace('_', ' ')}</th><td class=n>{invoice[label]}</td></tr>"
            )
    title = (
        f"{html.escape(invoice['tenant'])} · {html.escape(invoice['plan'])} v{invoice['version']} · "
        f"{invoice['currency']} {invoice['total']}"
    )
    head = "<tr><th>charge</th><th>group</th><th class=n>quantity</th><th class=n>amount</th></tr>"
    return f"<details><summary>{title}</summary><table>{head}{''.join(rows)}</table></details>"


def _amendment(amendment: dict[str, Any]) -> str:
    rows = [
        f"<tr><td>{html.escape(line['meter'])}</td>"
        f"<td>{html.escape(', '.join(f'{k}={v}' for k, v in line['group'].items()))}</td>"
        f"<td class=n>{line['quantity_delta']}</td><td class=n>{line['amount_delta']}</td></tr>"
        for line in amendment["lines"]
    ]
    for label in ("subtotal", "discount", "commitment_true_up", "credits_applied", "total"):
        name, delta = label.replace("_", " "), amendment[f"{label}_delta"]
        rows.append(f"<tr><th colspan=3>{name} Δ</th><td class=n>{delta}</td></tr>")
    expired = amendment.get("expired_grants") or []
    note = f" · grants expired since: {html.escape(', '.join(expired))}" if expired else ""
    title = (
        f"{html.escape(str(amendment['number']))} · {amendment['kind'].replace('_', ' ')} ·"
        f" {html.escape(amendment['tenant'])} · amends {amendment['adjusts_period']}"
        f" (revision {amendment['revision']}) · {amendment['currency']} {amendment['total_delta']}{note}"
    )
    return f"<details><summary>{title}</summary><table>{''.join(rows)}</table></details>"


def _balances(balances: list[dict[str, Any]]) -> str:
    figures = "".join(f"<th class=n>{name}</th>" for name in ("amount", "drawn", "left"))
    head = f"<tr><th>tenant</th><th>grant</th>{figures}</tr>"
    rows = "".join(
        f"<tr><td>{html.escape(b['tenant'])}</td><td>{html.escape(b['grant'])}</td>"
        f"<td class=n>{b['amount']}</td><td class=n>{b['drawn']}</td><td class=n>{b['left']}</td></tr>"
        for b in balances
    )
    return f"<table>{head}{rows}</table>"
