"""Pricing models of SPEC §3: the unrounded price of a quantity, as an exact Fraction."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from functools import cache

from meterline.catalog import Charge, PricingModel, Tier
from meterline.money import decimal_ratio


def price(charge: Charge, quantity: Fraction) -> Fraction:
    """What the charge costs for ``quantity`` units in one period, before rounding."""
    return Fraction(*price_ratio(charge, quantity))


def price_ratio(charge: Charge, quantity: Fraction) -> tuple[int, int]:
    """``price`` as numerator and denominator, not always in lowest terms: rating rounds a line's
    price from them, without making a Fraction for each flat, per-unit or package line."""
    if charge.model is PricingModel.FLAT:
        assert charge.amount is not None
        numerator, denominator = decimal_ratio(charge.amount)
        # quantity: the share of the period subscribed
        return numerator * quantity.numerator, denominator * quantity.denominator
    if quantity.numerator <= 0:
        return 0, 1  # v2: a negative quantity (max, min, latest) costs nothing, like none
    if charge.model is PricingModel.PER_UNIT:
        assert charge.unit_price is not None
        numerator, denominator = decimal_ratio(charge.unit_price)
        return quantity.numerator * numerator, quantity.denominator * denominator
    if charge.model is PricingModel.PACKAGE:
        assert charge.package_size is not None and charge.package_price is not None
        size_numerator, size_denominator = decimal_ratio(charge.package_size)
        numerator, denominator = decimal_ratio(charge.package_price)
        # every package begun is paid: ceil(quantity / size), by floor division of the negation
        packages = -(-quantity.numerator * size_denominator // (quantity.denominator * size_numerator))
        return packages * numerator, denominator
    cost = graduated if charge.model is PricingModel.GRADUATED else volume
    tiered = cost(charge.tiers, quantity)
    return tiered.numerator, tiered.denominator


def graduated(tiers: tuple[Tier, ...], quantity: Fraction) -> Fraction:
    """Each tier prices the units that fall in it, plus its flat fee if any unit does."""
    total = Fraction(0)
    lower = Fraction(0)
    for tier in tiers:
        if quantity <= lower:
            break
        upper = quantity if tier.up_to is None else min(quantity, _fraction(tier.up_to))
        total += (upper - lower) * _fraction(tier.unit_price) + _fraction(tier.flat_fee)
        if tier.up_to is None:
            break
        lower = _fraction(tier.up_to)
    return total


def volume(tiers: tuple[Tier, ...], quantity: Fraction) -> Fraction:
    """The whole quantity at the tier it falls in (``up_to`` inclusive), plus that tier's fee."""
    for tier in tiers:
        if tier.up_to is None or quantity <= tier.up_to:
            return quantity * _fraction(tier.unit_price) + _fraction(tier.flat_fee)
    raise AssertionError("the catalog guarantees an unbounded last tier")


@cache
def _fraction(number: Decimal) -> Fraction:
    """A catalog's price or bound as a Fraction, made once: rating prices thousands of lines with
    the same few."""
    return Fraction(number)
