"""Checking the stream against the batch: the pipeline's invoices and amendments against `meterline
rate` on the same accepted events (SPEC §7's invariant, v2), for every tenant, none exempted.

For every tenant, subscription and period P, and every field f of a line (quantity, amount), and
subtotal, discount and commitment_true_up: ``invoice(P).f + Σ amendments(P).f_delta == rate(P).f``.
For credits_applied and total, the same summed over all the periods checked, unless an amendment
of the tenant names a grant that expired before it could pay (``expired_grants``): then it says so.
A quantity whose exact value does not terminate is printed to 18 places, so quantities agree
within one unit of the 18th place per document summed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import orjson

from meterline.money import Money, round_money

LineKey = tuple[str, str, str, bytes]
"""(tenant, subscription, meter, group as canonical JSON)"""
InvoiceKey = tuple[str, str]
"""(tenant, subscription)"""
PERIOD_FIELDS = ("subtotal", "discount", "commitment_true_up")
SUMMED_FIELDS = ("credits_applied", "total")
Documents = Mapping[str, Iterable[Mapping[str, Any]]]
"""Invoices by period."""
PRINTED_PLACES = 18
K = TypeVar("K")


def _line_key(tenant: str, subscription: str, line: Mapping[str, Any]) -> LineKey:
    return tenant, subscription, str(line["meter"]), orjson.dumps(line["group"], option=orjson.OPT_SORT_KEYS)


class _Sum:
    """A quantity summed from printed texts, with how far the printing may have moved it."""

    def __init__(self) -> None:
        self.value = Decimal(0)
        self.slack = Decimal(0)

    def add(self, text: str) -> None:
        number = Decimal(text)
        self.value += number
        if -number.as_tuple().exponent >= PRINTED_PLACES:  # type: ignore[operator]
            self.slack += Decimal(1).scaleb(-PRINTED_PLACES)

    def agrees(self, other: _Sum) -> bool:
        return abs(self.value - other.value) <= self.slack + other.slack


def _billed(period: str, invoices: Documents, amendments: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The pipeline's figures for ``period``: its invoices plus the amendments of them, summed."""
    quantities: dict[LineKey, _Sum] = {}
    amounts: dict[LineKey, Money] = {}
    figures: dict[InvoiceKey, dict[str, Money]] = {}
    currency: dict[InvoiceKey, str] = {}
    for invoice in invoices.get(period, []):
        key = (str(invoice["tenant"]), str(invoice["subscription"]))
        currency[key] = str(invoice["currency"])
        figures[key] = _figures(invoice, PERIOD_FIELDS)
        for line in invoice["lines"]:
            line_key = _line_key(*key, line)
            quantities.setdefault(line_key, _Sum()).add(line["quantity"])
            _add_to(amounts, line_key, _money(line["amount"], invoice))
    for amendment in amendments:
        if amendment["adjusts_period"] != period:
            continue
        key = (str(amendment["tenant"]), str(amendment["subscription"]))
        sums = figures.setdefault(key, {})
        for name in PERIOD_FIELDS:
            _add_to(sums, name, _money(amendment[f"{name}_delta"], amendment))
        for line in amendment["lines"]:
            line_key = _line_key(*key, line)
            quantities.setdefault(line_key, _Sum()).add(line["quantity_delta"])
            _add_to(amounts, line_key, _money(line["amount_delta"], amendment))
    return {"quantities": quantities, "amounts": amounts, "figures": figures, "currency": currency}


def differences(
    period: str, expected: Mapping[str, Any], invoices: Documents, amendments: Iterable[Mapping[str, Any]]
) -> list[str]:
    """What differs, field by field, between `meterline rate`'s document for ``period`` and the
    pipeline's invoices of it plus their amendments (credits and totals: ``summed_differences``)."""
    found: list[str] = []
    billed = _billed(period, invoices, list(amendments))
    want_quantities: dict[LineKey, _Sum] = {}
    want_amounts: dict[LineKey, Money] = {}
    want_figures: dict[InvoiceKey, dict[str, Money]] = {}
    for invoice in expected["invoices"]:
        key = (str(invoice["tenant"]), str(invoice["subscription"]))
        want_figures[key] = _figures(invoice, PERIOD_FIELDS)
        if billed["currency"].get(key, invoice["currency"]) != invoice["currency"]:
            found.append(
                f"{period} {key[0]} {key[1]}: currency {billed['currency'][key]} ≠ {invoice['currency']}"
            )
        for line in invoice["lines"]:
            line_key = _line_key(*key, line)
            want_quantities.setdefault(line_key, _Sum()).add(line["quantity"])
            want_amounts[line_key] = _money(line["amount"], invoice)
    got_amounts, got_quantities = billed["amounts"], billed["quantities"]
    for key in sorted(want_amounts.keys() | got_amounts.keys()):
        tenant, subscription, meter, group = key
        where = f"{period} {tenant} {subscription} {meter} {group.decode()}"
        if _nonzero(want_amounts.get(key)) != _nonzero(got_amounts.get(key)):
            found.append(
                f"{where}: rate says {want_amounts.get(key)}, pipeline billed {got_amounts.get(key)}"
            )
        if not want_quantities.get(key, _Sum()).agrees(got_quantities.get(key, _Sum())):
            want, got = want_quantities.get(key, _Sum()).value, got_quantities.get(key, _Sum()).value
            found.append(f"{where}: rate's quantity {want}, the pipeline's {got}")
    issued = {(str(i["tenant"]), str(i["subscription"])) for i in invoices.get(period, [])}
    for key in sorted(want_figures.keys() | billed["figures"].keys()):
        where = f"{period} {key[0]} {key[1]}"
        if key not in issued:
            found.append(f"{where}: no invoice from the pipeline")
        elif key not in want_figures:
            found.append(f"{where}: invoiced by the pipeline only")
        elif (got := billed["figures"][key]) != want_figures[key]:
            found.append(f"{where}: rate {_text(want_figures[key])}, invoice + amendments {_text(got)}")
    return found


def summed_differences(
    expected: Iterable[Mapping[str, Any]], invoices: Documents, amendments: Iterable[Mapping[str, Any]]
) -> list[str]:
    """credits_applied and total summed over the periods of ``expected`` (`meterline rate`'s
    documents), per tenant and currency: the pipeline's invoices and amendments of those periods
    against rate's, except for a tenant whose amendment names a grant that expired first."""
    documents = list(expected)
    periods = {str(document["period"]) for document in documents}
    want: dict[tuple[str, str], dict[str, Money]] = {}
    got: dict[tuple[str, str], dict[str, Money]] = {}
    for document in documents:
        for invoice in document["invoices"]:
            _add(want, invoice, "")
    for period in periods:
        for invoice in invoices.get(period, []):
            _add(got, invoice, "")
    expired: set[str] = set()
    for amendment in amendments:
        if amendment["adjusts_period"] in periods:
            _add(got, amendment, "_delta")
            if amendment.get("expired_grants"):
                expired.add(str(amendment["tenant"]))
    found = []
    for key in sorted(want.keys() | got.keys()):
        zero = dict.fromkeys(SUMMED_FIELDS, round_money(0, key[1]))
        if want.get(key, zero) != got.get(key, zero) and key[0] not in expired:
            found.append(
                f"{key[0]} ({key[1]}) over {', '.join(sorted(periods))}: rate {_text(want.get(key, zero))},"
                f" invoices + amendments {_text(got.get(key, zero))}"
            )
    return found


def _add(sums: dict[tuple[str, str], dict[str, Money]], document: Mapping[str, Any], suffix: str) -> None:
    key = (str(document["tenant"]), str(document["currency"]))
    figures = sums.setdefault(key, {})
    for name in SUMMED_FIELDS:
        _add_to(figures, name, _money(document[f"{name}{suffix}"], document))


def _money(text: str, document: Mapping[str, Any]) -> Money:
    """An amount of ``document`` (an invoice or amendment, which names its currency)."""
    return Money.parse(text, str(document["currency"]))


def _figures(document: Mapping[str, Any], names: Iterable[str]) -> dict[str, Money]:
    return {name: _money(document[name], document) for name in names}


def _add_to(sums: dict[K, Money], key: K, amount: Money) -> None:
    sums[key] = sums.get(key, amount.zero()) + amount


def _nonzero(amount: Money | None) -> Money | None:
    """None for no amount or a zero one: a line billed 0 agrees with a line not billed."""
    return amount if amount else None


def _text(figures: Mapping[str, Money]) -> str:
    return " ".join(f"{name}={value}" for name, value in figures.items())


def reconcile(
    expected: Iterable[Mapping[str, Any]], invoices: Documents, amendments: Iterable[Mapping[str, Any]]
) -> list[str]:
    """Every difference between `meterline rate`'s documents (one per period, in order) and the
    pipeline's invoices and amendments: each period field by field, then the summed figures."""
    documents, changes = list(expected), list(amendments)
    found = [
        difference
        for document in documents
        for difference in differences(str(document["period"]), document, invoices, changes)
    ]
    return found + summed_differences(documents, invoices, changes)
