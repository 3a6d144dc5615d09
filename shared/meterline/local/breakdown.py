"""Each invoice's lines by the cell (the ``<cloud>-<region>`` market) their usage came from: a
report beside the invoices, never a field of one.

A line whose group names its market belongs to that market. Any other line (its meter does not
group by market: the home merged every cell's states into it) is attributed from the statements
the home applied to the invoice's own ledger: each cell's quantity for the line's meter and group,
kept only when the cells' quantities add up exactly to the line's (sums, counts, time-weighted
quantities; never a max, min, latest or distinct count, nor a tenant with more than one invoice in
the period). Its amount is then split in proportion to those quantities, each part rounded down to
the amount's last place and the units left over given to the largest remainders (ties: the cell
named first), so the parts add up to the line. A line that cannot be attributed so stays under
"every cell".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

import orjson

from meterline.catalog import Aggregation, Catalog
from meterline.exchange import Exchange
from meterline.invoice import group_json, group_to_json
from meterline.markets import CLOUD, REGION
from meterline.periods import Period
from meterline.pipeline.ingest import TABLE, applied_sk
from meterline.pipeline.ledger import period_pk
from meterline.ports import Store
from meterline.statements import Address, period_prefix, read_statement
from meterline.usage import UsageBook

EVERY_CELL = "every cell"
ADDITIVE = frozenset({Aggregation.SUM, Aggregation.COUNT, Aggregation.TIME_WEIGHTED})

LineKey = tuple[str, str, bytes]
"""(tenant, meter, the group as sorted JSON)"""
CellQuantities = dict[LineKey, dict[str, Fraction]]


def line_key(tenant: str, meter: str, group: Mapping[str, Any]) -> LineKey:
    return tenant, meter, orjson.dumps(dict(group), option=orjson.OPT_SORT_KEYS)


def applied_books(
    catalog: Catalog, store: Store, exchange: Exchange, cells: Iterable[str], period: Period
) -> dict[str, UsageBook]:
    """Per cell, the usage of its statements for ``period`` that the home applied to that period's
    own ledger (the late ones, applied to a later ledger, are the amendments' usage)."""
    books: dict[str, UsageBook] = {}
    for cell in cells:
        book = books[cell] = UsageBook()
        for key in exchange.keys(period_prefix(cell, period)):
            address = Address.of(key)
            applied = not address.is_final and store.get(
                TABLE, period_pk(period), applied_sk(address.cell, address.name)
            )
            if not applied:
                continue
            body = exchange.get(key)
            if body is not None:
                book.merge(read_statement(catalog, key, body)[1])
    return books


def cell_quantities(catalog: Catalog, books: Mapping[str, UsageBook], period: Period) -> CellQuantities:
    """Each cell's quantity per (tenant, meter, group) of additive meters."""
    quantities: CellQuantities = {}
    for cell, book in books.items():
        for tenant in book.tenants(period):
            for (meter_key, group), quantity in book.quantities(catalog, tenant, period).items():
                meter = catalog.meters[meter_key]
                if meter.aggregation not in ADDITIVE:
                    continue
                named = group_to_json(group_json(meter.group_by, group))  # as the invoice line spells it
                quantities.setdefault(line_key(tenant, meter_key, named), {})[cell] = quantity
    return quantities


def split_amount(amount: Decimal, weights: Mapping[str, Fraction]) -> dict[str, Decimal]:
    """``amount`` in parts proportional to ``weights`` (positive total), in the amount's last place,
    by largest remainder: the parts add up to ``amount``."""
    exponent = int(amount.as_tuple().exponent)
    unit = Fraction(10) ** exponent
    units = Fraction(amount) / unit
    total = sum(weights.values(), Fraction(0))
    shares = {cell: units * weight / total for cell, weight in weights.items()}
    parts = {cell: share.numerator // share.denominator for cell, share in shares.items()}
    left = int(units) - sum(parts.values())
    # sorted is stable: equal remainders keep the order the cells were named in
    by_remainder = sorted(weights, key=lambda cell: -(shares[cell] - parts[cell]))
    for cell in by_remainder[:left]:
        parts[cell] += 1
    return {cell: Decimal(part).scaleb(exponent) for cell, part in parts.items()}


def market_breakdown(invoice: dict[str, Any], quantities: CellQuantities | None = None) -> dict[str, Decimal]:
    """An invoice's line amounts by market; see the module's docstring. With no ``quantities``, the
    lines that do not group by market are all under "every cell"."""
    amounts: dict[str, Decimal] = {}

    def add(market: str, amount: Decimal) -> None:
        amounts[market] = amounts.get(market, Decimal(0)) + amount

    for line in invoice["lines"]:
        group, amount = line["group"], Decimal(line["amount"])
        if REGION in group:
            add(f"{group.get(CLOUD, '?')}-{group[REGION]}", amount)
            continue
        by_cell = (quantities or {}).get(line_key(invoice["tenant"], line["meter"], group), {})
        weights = {cell: quantity for cell, quantity in by_cell.items() if quantity}
        exact = sum(weights.values(), Fraction(0)) == Fraction(Decimal(line["quantity"]))
        if not weights or not exact:
            add(EVERY_CELL, amount)
            continue
        for cell, part in split_amount(amount, weights).items():
            add(cell, part)
    return amounts


def attributable(invoices: list[dict[str, Any]], quantities: CellQuantities) -> CellQuantities:
    """``quantities`` without the tenants that have more than one invoice in the period: their
    lines are each a part of the month, the cells' statements the whole of it."""
    invoiced = Counter(invoice["tenant"] for invoice in invoices)
    return {key: value for key, value in quantities.items() if invoiced[key[0]] == 1}
