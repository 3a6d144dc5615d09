"""Rating: a tenant's period usage and catalog entry in, one invoice out (SPEC §3).

Each line is rounded once to the currency's minor unit; everything after works in rounded
money, so the invoice's parts add up exactly to its total.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

from meterline.catalog import Catalog, Charge, Customer, Plan, PricingModel
from meterline.invoice import Invoice, Line, group_json
from meterline.metering import Group
from meterline.money import round_money
from meterline.periods import Period
from meterline.pricing import price

Usage = Mapping[tuple[str, Group], Fraction]
"""A tenant's quantities for one period, by (meter key, group), after divide_by."""


def usage_lines(catalog: Catalog, charges: tuple[Charge, ...], currency: str, usage: Usage) -> list[Line]:
    """One line per usage charge and group with usage, then one per flat charge."""
    by_meter = {charge.meter: charge for charge in charges if charge.model is not PricingModel.FLAT}
    lines: list[Line] = []
    for (meter_key, group), quantity in sorted(usage.items(), key=_usage_order):
        charge = by_meter.get(meter_key)
        if charge is None:
            continue  # measured, but this plan does not price it
        names = catalog.meters[meter_key].group_by
        amount = round_money(price(charge, quantity), currency)
        lines.append(Line(meter_key, group_json(names, group), quantity, amount))
    for charge in charges:
        if charge.model is PricingModel.FLAT:
            lines.append(
                Line(charge.line_key, {}, Fraction(1), round_money(price(charge, Fraction(1)), currency))
            )
    return lines


def rate_tenant(
    catalog: Catalog,
    customer: Customer,
    plan: Plan,
    period: Period,
    usage: Usage,
    adjustments: tuple[Line, ...] = (),
) -> Invoice:
    charges = catalog.charges_for(customer, plan)
    currency = plan.currency
    lines = tuple(usage_lines(catalog, charges, currency, usage))
    # Fractions, not Decimals: Decimal arithmetic rounds to its context's 28 digits.
    subtotal = sum((Fraction(line.amount) for line in (*lines, *adjustments)), Fraction(0))
    discount = Fraction(0)
    if plan.discount_percent:
        discount = Fraction(round_money(subtotal * Fraction(plan.discount_percent) / 100, currency))
    net = subtotal - discount
    true_up = Fraction(0)
    if plan.minimum_commit is not None:
        true_up = max(Fraction(0), Fraction(round_money(plan.minimum_commit, currency)) - net)
    credits_applied = Fraction(0)
    if customer.credits:
        credits = Fraction(round_money(customer.credits, currency))
        credits_applied = max(Fraction(0), min(credits, net + true_up))
    total = net + true_up - credits_applied
    return Invoice(
        tenant=customer.tenant,
        period=period,
        plan=plan.key,
        version=plan.version,
        currency=currency,
        lines=lines,
        # Each part is already a whole number of minor units: this only writes it at that scale.
        subtotal=round_money(subtotal, currency),
        discount=round_money(discount, currency),
        commitment_true_up=round_money(true_up, currency),
        credits_applied=round_money(credits_applied, currency),
        total=round_money(total, currency),
        adjustments=adjustments,
    )


def _usage_order(item: tuple[tuple[str, Group], Fraction]) -> tuple[str, list[tuple[bool, str, str]]]:
    """Meter key, then group values as text (null last); the type name orders 5 and "5"."""
    (meter_key, group), _ = item
    return meter_key, [(value is None, str(value), type(value).__name__) for value in group]
