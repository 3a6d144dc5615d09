"""Rating: one term's usage, under its plan version and the customer's contract, into one invoice
(SPEC §3, §5, §6).

Each line is rounded once to the currency's minor unit; everything after works in rounded money,
so the invoice's parts add up exactly to its total. Flat charges and the minimum commitment are
prorated by the term's share of the month, then rounded once.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from operator import itemgetter
from typing import TypeVar

from meterline.catalog import Catalog, Charge, Customer, PricingModel
from meterline.credits import Credits
from meterline.invoice import Invoice, Line, group_json
from meterline.metering import Group
from meterline.money import Money, decimal_ratio, round_money, round_part, round_ratio
from meterline.pricing import price_ratio
from meterline.terms import Term
from meterline.usage import Usage


def usage_lines(
    catalog: Catalog, charges: tuple[Charge, ...], currency: str, usage: Usage, share: Fraction = Fraction(1)
) -> list[Line]:
    """One line per usage charge and group with usage, then one per flat charge (quantity: ``share``).

    A group is priced by the first charge of its meter whose ``where`` matches its market (SPEC §8).
    """
    by_meter: dict[str | None, list[Charge]] = {}
    for charge in charges:
        if charge.model is not PricingModel.FLAT:
            by_meter.setdefault(charge.meter, []).append(charge)
    lines: list[Line] = []
    priced = [item for item in usage.items() if item[0][0] in by_meter]  # the rest makes no line
    sort_usage(priced)
    meters = catalog.meters
    meter: str | None = None
    names: tuple[str, ...] = ()
    meter_charges: list[Charge] = []
    everywhere: Charge | None = None
    for (meter_key, group), quantity in priced:
        if meter_key != meter:  # items come by meter: what the meter's lines share is looked up once
            meter, names, meter_charges = meter_key, meters[meter_key].group_by, by_meter[meter_key]
            # the usual charge prices every market: no pricing_charge call per line
            everywhere = meter_charges[0] if meter_charges[0].where is None else None
        priced_by = everywhere or pricing_charge(meter_charges, names, group)
        if priced_by is None:
            continue  # measured, but this plan does not price it (in this market)
        amount = round_ratio(*price_ratio(priced_by, quantity), currency)
        lines.append(Line(meter_key, group_json(names, group) if names else {}, quantity, amount))
    for charge in charges:
        if charge.model is PricingModel.FLAT:
            lines.append(Line(charge.line_key, {}, share, round_ratio(*price_ratio(charge, share), currency)))
    return lines


def priced_meters(charges: Sequence[Charge]) -> frozenset[str]:
    """The meters that some usage charge of ``charges`` prices: the usage lines of an invoice can
    have no others."""
    return frozenset(charge.meter for charge in charges if charge.meter is not None)


def pricing_charge(charges: Sequence[Charge], names: Sequence[str], group: Group) -> Charge | None:
    """The first of a meter's charges whose ``where`` (none: every market) matches the group's market."""
    for charge in charges:
        if charge.where is None or charge.where.matches(names, group):
            return charge
    return None


def rate_term(
    catalog: Catalog,
    customer: Customer,
    term: Term,
    usage: Usage,
    charges: tuple[Charge, ...],
    credits: Credits | None = None,
) -> Invoice:
    """The term's invoice, priced by ``charges`` (``catalog.charges_for(customer, term.plan)``: its
    caller needs them first, to know which meters to work out); ``credits`` (the customer's balances
    so far) pays what is due and is drawn."""
    plan = term.plan
    currency = plan.currency
    share = term.share
    lines = tuple(usage_lines(catalog, charges, currency, usage, share))
    zero = round_money(0, currency)
    subtotal = Money(sum(line.amount.minor for line in lines), currency)  # every line is of ``currency``
    discount = zero
    if plan.discount_percent:
        percent, denominator = decimal_ratio(plan.discount_percent)
        discount = round_part(subtotal, percent, denominator * 100)
    net = subtotal - discount
    true_up = zero
    if plan.minimum_commit is not None:
        commit, denominator = decimal_ratio(plan.minimum_commit)
        commitment = round_ratio(commit * share.numerator, denominator * share.denominator, currency)
        true_up = max(zero, commitment - net)
    drawdowns = credits.draw(term.period, net + true_up) if credits else ()
    credits_applied = sum((drawdown.amount for drawdown in drawdowns), zero)
    return Invoice(
        tenant=customer.tenant,
        period=term.period,
        plan=plan.key,
        version=plan.version,
        currency=currency,
        lines=lines,
        subtotal=subtotal,
        discount=discount,
        commitment_true_up=true_up,
        credits_applied=credits_applied,
        total=net + true_up - credits_applied,
        subscription=term.subscription.key,
        credit_drawdowns=drawdowns,
        catalog_digest=catalog.digest,
    )


def usage_order(item: tuple[tuple[str, Group], object]) -> tuple[str, list[tuple[bool, str, str]]]:
    """A (meter key, group)'s item in order: meter key, then group values as text (null last); the
    type name orders 5 and "5"."""
    (meter_key, group), _ = item
    return meter_key, [(value is None, str(value), type(value).__name__) for value in group]


def sort_usage(items: list[tuple[tuple[str, Group], _Item]]) -> None:
    """Sort (meter key, group) items in ``usage_order``. When every group value is text (the
    usual case), that order is the keys' own: they are compared as they are, without a key made
    per item."""
    if all(type(value) is str for (_, group), _ in items for value in group):
        items.sort(key=_state_key)
    else:
        items.sort(key=usage_order)


_Item = TypeVar("_Item")
_state_key = itemgetter(0)
