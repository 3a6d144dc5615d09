"""Pricing models of SPEC §3: the unrounded price of a quantity, as an exact Fraction."""

from __future__ import annotations

import math
from fractions import Fraction

from meterline.catalog import Charge, PricingModel, Tier


def price(charge: Charge, quantity: Fraction) -> Fraction:
    """What the charge costs for ``quantity`` units in one period, before rounding."""
    if charge.model is PricingModel.FLAT:
        assert charge.amount is not None
        return Fraction(charge.amount) * quantity  # quantity: the share of the period subscribed
    if quantity.numerator <= 0:
        return Fraction(0)  # v2: a negative quantity (max, min, latest) costs nothing, like none
    if charge.model is PricingModel.PER_UNIT:
        assert charge.unit_price is not None
        return quantity * Fraction(charge.unit_price)
    if charge.model is PricingModel.PACKAGE:
        assert charge.package_size is not None and charge.package_price is not None
        return math.ceil(quantity / Fraction(charge.package_size)) * Fraction(charge.package_price)
    if charge.model is PricingModel.GRADUATED:
        return graduated(charge.tiers, quantity)
    return volume(charge.tiers, quantity)


def graduated(tiers: tuple[Tier, ...], quantity: Fraction) -> Fraction:
    """Each tier prices the units that fall in it, plus its flat fee if any unit does."""
    total = Fraction(0)
    lower = Fraction(0)
    for tier in tiers:
        if quantity <= lower:
            break
        upper = quantity if tier.up_to is None else min(quantity, Fraction(tier.up_to))
        total += (upper - lower) * Fraction(tier.unit_price) + Fraction(tier.flat_fee)
        if tier.up_to is None:
            break
        lower = Fraction(tier.up_to)
    return total


def volume(tiers: tuple[Tier, ...], quantity: Fraction) -> Fraction:
    """The whole quantity at the tier it falls in (``up_to`` inclusive), plus that tier's fee."""
    for tier in tiers:
        if tier.up_to is None or quantity <= tier.up_to:
            return quantity * Fraction(tier.unit_price) + Fraction(tier.flat_fee)
    raise AssertionError("the catalog guarantees an unbounded last tier")
