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
    price from them, without making a Fraction for each line."""
    quantity_numerator, quantity_denominator = quantity.numerator, quantity.denominator
    model = charge.model
    if model is PricingModel.FLAT:
        assert charge.amount is not None
        numerator, denominator = decimal_ratio(charge.amount)
        # quantity: the share of the period subscribed
        return numerator * quantity_numerator, denominator * quantity_denominator
    if quantity_numerator <= 0:
        return 0, 1  # v2: a negative quantity (max, min, latest) costs nothing, like none
    if model is PricingModel.PER_UNIT:
        assert charge.unit_price is not None
        numerator, denominator = decimal_ratio(charge.unit_price)
        return quantity_numerator * numerator, quantity_denominator * denominator
    if model is PricingModel.PACKAGE:
        assert charge.package_size is not None and charge.package_price is not None
        size_numerator, size_denominator = decimal_ratio(charge.package_size)
        numerator, denominator = decimal_ratio(charge.package_price)
        # every package begun is paid: ceil(quantity / size), by floor division of the negation
        packages = -(-quantity_numerator * size_denominator // (quantity_denominator * size_numerator))
        return packages * numerator, denominator
    if model is PricingModel.GRADUATED:
        return _graduated_ratio(charge.tiers, quantity_numerator, quantity_denominator)
    return _volume_ratio(charge.tiers, quantity_numerator, quantity_denominator)


def graduated(tiers: tuple[Tier, ...], quantity: Fraction) -> Fraction:
    """Each tier prices the units that fall in it, plus its flat fee if any unit does."""
    return Fraction(*_graduated_ratio(tiers, quantity.numerator, quantity.denominator))


def volume(tiers: tuple[Tier, ...], quantity: Fraction) -> Fraction:
    """The whole quantity at the tier it falls in (``up_to`` inclusive), plus that tier's fee."""
    return Fraction(*_volume_ratio(tiers, quantity.numerator, quantity.denominator))


# Tiered prices are worked out in integers: with every bound, price and fee of the tiers a whole
# number of 1/scale, a quantity of n/d is n * scale units of 1/(d * scale), and a price comes out
# over d * scale * scale.


def _graduated_ratio(tiers: tuple[Tier, ...], numerator: int, denominator: int) -> tuple[int, int]:
    scale, scaled = _scaled(tiers)
    quantity = numerator * scale
    total = 0
    lower = 0
    for up_to, unit_price, flat_fee in scaled:
        if quantity <= lower:
            break
        upper = quantity if up_to is None else min(quantity, up_to * denominator)
        total += (upper - lower) * unit_price + flat_fee * denominator * scale
        if up_to is None:
            break
        lower = up_to * denominator
    return total, denominator * scale * scale


def _volume_ratio(tiers: tuple[Tier, ...], numerator: int, denominator: int) -> tuple[int, int]:
    scale, scaled = _scaled(tiers)
    quantity = numerator * scale
    for up_to, unit_price, flat_fee in scaled:
        if up_to is None or quantity <= up_to * denominator:
            return quantity * unit_price + flat_fee * denominator * scale, denominator * scale * scale
    raise AssertionError("the catalog guarantees an unbounded last tier")


@cache
def _scaled(tiers: tuple[Tier, ...]) -> tuple[int, tuple[tuple[int | None, int, int], ...]]:
    """The tiers' ``scale`` (a power of ten), and each tier's bound (None: unbounded), unit price and
    flat fee as whole numbers of 1/scale; made once per catalog's tiers."""
    numbers = [number for tier in tiers for number in (tier.up_to, tier.unit_price, tier.flat_fee)]
    exponents = [number.as_tuple().exponent for number in numbers if number is not None]
    places = max([0, *(-exponent for exponent in exponents if isinstance(exponent, int))])
    scale: int = 10**places

    def whole(number: Decimal) -> int:
        numerator, denominator = decimal_ratio(number)
        return numerator * scale // denominator  # exact: the number has at most log10(scale) places

    return scale, tuple(
        (None if tier.up_to is None else whole(tier.up_to), whole(tier.unit_price), whole(tier.flat_fee))
        for tier in tiers
    )
