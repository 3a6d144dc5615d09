"""Invoices and the event reconciliation as rich tables, for people at a terminal.

Display only: quantities are shown to three places here, the JSON of ``meterline rate`` keeps
them exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from meterline.events import EVENT_REASONS, Reason
from meterline.invoice import Invoice, Line
from meterline.money import Money, shifted
from meterline.offline import RateResult, Summary


def render(
    console: Console, result: RateResult, injected: Mapping[str, int] | None = None, *, title: str = ""
) -> None:
    """Every invoice, the totals by currency, then how the events reconcile."""
    if title:
        console.rule(title)
    for invoice in result.invoices:
        console.print(invoice_table(invoice))
    console.print(totals_table(result.invoices))
    console.print(reconciliation_table(result.summary, injected))
    if result.unbilled_tenants:
        console.print(
            Text("Usage without a plan in effect (not invoiced): ", style="yellow")
            + Text(", ".join(result.unbilled_tenants))
        )


def invoice_table(invoice: Invoice) -> Table:
    currency = invoice.currency
    table = Table(
        title=f"{invoice.tenant} · {invoice.plan} v{invoice.version} · {invoice.period} · {currency}",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_footer=False,
    )
    table.add_column("charge")
    table.add_column("group")
    table.add_column("quantity", justify="right")
    table.add_column(f"amount ({currency})", justify="right")
    for line in invoice.lines:
        table.add_row(line.meter, _group(line), quantity_text(line.quantity), money_text(line.amount))
    table.add_section()
    table.add_row("subtotal", "", "", money_text(invoice.subtotal))
    for label, amount, sign in (
        ("discount", invoice.discount, "−"),
        ("commitment true-up", invoice.commitment_true_up, "+"),
        ("credits applied", invoice.credits_applied, "−"),
    ):
        if amount:
            table.add_row(label, "", "", f"{sign} {money_text(amount)}")
    table.add_row(Text("total", style="bold"), "", "", Text(money_text(invoice.total), style="bold"))
    return table


def totals_table(invoices: list[Invoice]) -> Table:
    table = Table(title="Invoiced, by currency", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("currency")
    table.add_column("invoices", justify="right")
    table.add_column("subtotal", justify="right")
    table.add_column("total", justify="right")
    by_currency: dict[str, list[Invoice]] = {}
    for invoice in invoices:
        by_currency.setdefault(invoice.currency, []).append(invoice)
    for currency, group in sorted(by_currency.items()):
        table.add_row(
            currency,
            str(len(group)),
            money_text(sum((invoice.subtotal for invoice in group), group[0].total.zero())),
            money_text(sum((invoice.total for invoice in group), group[0].total.zero())),
        )
    return table


def amendments_table(amendments: list[dict[str, Any]]) -> Table:
    """Each amendment: its number, kind, the invoice it amends, and what changed."""
    table = Table(
        title="Amendments (late usage of issued periods)", title_justify="left", box=box.SIMPLE_HEAD
    )
    for name in ("number", "kind", "tenant", "amends", "lines"):
        table.add_column(name)
    for name in ("subtotal Δ", "true-up Δ", "credits Δ", "total Δ"):
        table.add_column(name, justify="right")
    for amendment in amendments:
        table.add_row(
            str(amendment["number"]),
            str(amendment["kind"]).replace("_", " "),
            str(amendment["tenant"]),
            f"{amendment['adjusts_period']} rev {amendment['revision']}",
            str(len(amendment["lines"])),
            *(
                _signed(amendment[f"{name}_delta"])
                for name in ("subtotal", "commitment_true_up", "credits_applied", "total")
            ),
        )
    return table


def balances_table(balances: list[dict[str, Any]]) -> Table:
    """Each credit grant: its amount, what invoices and amendments drew, what is left."""
    table = Table(title="Credit grants", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("tenant")
    table.add_column("grant")
    for name in ("amount", "drawn", "left"):
        table.add_column(name, justify="right")
    for balance in balances:
        table.add_row(
            balance["tenant"],
            balance["grant"],
            *(money_text(Decimal(balance[n])) for n in ("amount", "drawn", "left")),
        )
    return table


def _signed(text: str) -> str:
    amount = Decimal(text)
    return f"+{money_text(amount)}" if amount > 0 else money_text(amount)


def reconciliation_table(summary: Summary, injected: Mapping[str, int] | None = None) -> Group:
    """received = accepted + duplicates + rejected + out_of_period, with what was injected beside it."""
    table = Table(title="Events", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("outcome")
    table.add_column("events", justify="right")
    if injected is not None:
        table.add_column("injected", justify="right")
    rows: list[tuple[str, int, str]] = [
        ("accepted", summary.accepted, "accepted"),
        ("duplicates", summary.duplicates, "duplicates"),
        *(
            (f"  rejected: {r.value}", summary.rejected_by_reason[r.value], r.value)
            for r in Reason
            if r in EVENT_REASONS or summary.rejected_by_reason[r.value]
        ),
        ("rejected", summary.rejected, "rejected"),
        ("out of period (late)", summary.out_of_period, "out_of_period"),
        ("received", summary.received, "received"),
    ]
    for label, count, key in rows:
        if key == "received":
            table.add_section()
        cells = [label, f"{count:,}"]
        if injected is not None:
            cells.append(f"{injected[key]:,}" if key in injected else "")
        table.add_row(*cells)
    accounted = summary.accepted + summary.duplicates + summary.rejected + summary.out_of_period
    if accounted == summary.received:
        verdict = Text(
            f"✓ reconciled: {summary.accepted:,} + {summary.duplicates:,} + {summary.rejected:,}"
            f" + {summary.out_of_period:,} = {summary.received:,} received",
            style="green",
        )
    else:
        verdict = Text(
            f"✗ not reconciled: {accounted:,} events accounted for, {summary.received:,} received",
            style="red",
        )
    return Group(table, verdict)


def money_text(amount: Money | Decimal) -> str:
    return f"{amount.decimal if isinstance(amount, Money) else amount:,}"


def quantity_text(quantity: Fraction) -> str:
    """Three places at most, trailing zeros dropped: 5,981 · 2,107.677 · 0.5."""
    shown = shifted(round(quantity * 1000), 3)
    text = f"{shown:,.3f}".rstrip("0").rstrip(".")
    if shown != quantity:
        text = "≈" + text
    return text


def _group(line: Line) -> str:
    return ", ".join(f"{name}={value}" for name, value in line.group.items())
