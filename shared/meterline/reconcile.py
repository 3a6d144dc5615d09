"""Checking the stream against the batch: the pipeline's invoices against `meterline rate`.

For a period P, every line `meterline rate` gives must be matched, to the cent, by the pipeline's
line on P's invoice for the same tenant and subscription, plus any adjustment lines for P (and
that subscription) on later invoices (usage that arrived after P closed). Invoices that no
adjustment touches must match whole: subtotal to total, credit drawdowns included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import orjson

LineKey = tuple[str, str, str, bytes]
"""(tenant, subscription, meter, group as canonical JSON)"""
InvoiceKey = tuple[str, str]
"""(tenant, subscription)"""


def _line_key(tenant: str, subscription: str, line: Mapping[str, Any]) -> LineKey:
    return tenant, subscription, str(line["meter"]), orjson.dumps(line["group"], option=orjson.OPT_SORT_KEYS)


def billed_lines(
    period: str, invoices_by_period: Mapping[str, Iterable[Mapping[str, Any]]]
) -> dict[LineKey, Decimal]:
    """Amounts billed for ``period``'s usage: its own invoices' lines plus later adjustments."""
    amounts: dict[LineKey, Decimal] = {}
    for invoice_period, invoices in invoices_by_period.items():
        for invoice in invoices:
            for line in invoice["lines"]:
                adjusts = line.get("adjusts_period")
                if adjusts is None and invoice_period == period:
                    key = _line_key(invoice["tenant"], invoice["subscription"], line)
                elif adjusts == period:
                    key = _line_key(invoice["tenant"], line["adjusts_subscription"], line)
                else:
                    continue
                amounts[key] = amounts.get(key, Decimal(0)) + Decimal(line["amount"])
    return amounts


def differences(
    period: str,
    expected: Mapping[str, Any],
    invoices_by_period: Mapping[str, Iterable[Mapping[str, Any]]],
) -> list[str]:
    """What differs between `meterline rate`'s output for ``period`` and the pipeline's invoices."""
    found: list[str] = []
    want: dict[LineKey, Decimal] = {}
    for invoice in expected["invoices"]:
        for line in invoice["lines"]:
            want[_line_key(invoice["tenant"], invoice["subscription"], line)] = Decimal(line["amount"])
    got = billed_lines(period, invoices_by_period)
    for key in sorted(set(want) | set(got)):
        if want.get(key, Decimal(0)) != got.get(key, Decimal(0)):
            tenant, subscription, meter, group = key
            where = f"{period} {tenant} {subscription} {meter} {group.decode()}"
            found.append(f"{where}: rate says {want.get(key)}, pipeline billed {got.get(key)}")
    adjusted = _adjusted_tenants(period, invoices_by_period)
    own = {_invoice_key(invoice): invoice for invoice in invoices_by_period.get(period, [])}
    for invoice in expected["invoices"]:
        tenant, subscription = _invoice_key(invoice)
        if tenant in adjusted:
            continue
        mine = own.get((tenant, subscription))
        where = f"{period} {tenant} {subscription}"
        if mine is None:
            found.append(f"{where}: no invoice from the pipeline")
        elif _totals(mine) != _totals(invoice):
            found.append(f"{where}: totals differ: rate {_totals(invoice)} pipeline {_totals(mine)}")
    for tenant, subscription in sorted(
        own.keys() - {_invoice_key(invoice) for invoice in expected["invoices"]}
    ):
        found.append(f"{period} {tenant} {subscription}: invoiced by the pipeline only")
    return found


def _invoice_key(invoice: Mapping[str, Any]) -> InvoiceKey:
    return str(invoice["tenant"]), str(invoice["subscription"])


def _totals(invoice: Mapping[str, Any]) -> tuple[str, ...]:
    names = ("currency", "subtotal", "discount", "commitment_true_up", "credits_applied", "total")
    drawdowns = orjson.dumps(invoice["credit_drawdowns"]).decode()
    return (*(str(invoice[name]) for name in names), drawdowns)


def _adjusted_tenants(period: str, invoices_by_period: Mapping[str, Iterable[Mapping[str, Any]]]) -> set[str]:
    tenants = set()
    for invoices in invoices_by_period.values():
        for invoice in invoices:
            if any(line.get("adjusts_period") == period for line in invoice["lines"]):
                tenants.add(invoice["tenant"])
    # an invoice that carries adjustments of an earlier period has other totals than rate's too
    for invoice in invoices_by_period.get(period, []):
        if any("adjusts_period" in line for line in invoice["lines"]):
            tenants.add(invoice["tenant"])
    return tenants
