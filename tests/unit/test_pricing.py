"""SPEC §3 pricing models, golden values worked out by hand: the exact price before rounding."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from meterline.catalog import Charge, PricingModel, Tier
from meterline.pricing import price


def q(text: str) -> Fraction:
    return Fraction(Decimal(text))


def tiers(*rows: tuple[str | None, str, str]) -> tuple[Tier, ...]:
    return tuple(
        Tier(None if up is None else Decimal(up), Decimal(unit), Decimal(fee)) for up, unit, fee in rows
    )


PER_UNIT = Charge(PricingModel.PER_UNIT, meter="m", unit_price=Decimal("0.05"))
PACKAGE = Charge(PricingModel.PACKAGE, meter="m", package_size=Decimal("1000"), package_price=Decimal("0.10"))
GRADUATED = Charge(
    PricingModel.GRADUATED,
    meter="m",
    tiers=tiers(("1000", "0.05", "0"), ("5000", "0.04", "10"), (None, "0.03", "5")),
)
VOLUME = Charge(
    PricingModel.VOLUME,
    meter="m",
    tiers=tiers(("1000", "0.05", "1"), ("5000", "0.04", "2"), (None, "0.03", "0")),
)
FLAT = Charge(PricingModel.FLAT, key="support", amount=Decimal("99.00"))


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("1234.5", "61.725"),  # 1234.5 × 0.05 = 61.725 (unrounded)
        ("1", "0.05"),  # 1 × 0.05
        ("0.3", "0.015"),  # 0.3 × 0.05
    ],
)
def test_per_unit_is_quantity_times_unit_price(quantity: str, expected: str) -> None:
    assert price(PER_UNIT, q(quantity)) == q(expected)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("3000", "0.30"),  # exact multiple: 3000 / 1000 = 3 packages × 0.10
        ("3001", "0.40"),  # one unit over: ceil(3.001) = 4 packages × 0.10
        ("0.5", "0.10"),  # part of a package is a whole package: ceil(0.0005) = 1 × 0.10
        ("1000", "0.10"),  # exactly one package
        ("999.999", "0.10"),  # ceil(0.999999) = 1
    ],
)
def test_package_charges_whole_packages_rounded_up(quantity: str, expected: str) -> None:
    assert price(PACKAGE, q(quantity)) == q(expected)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("1000", "50"),  # 1000 × 0.05 = 50; no unit reaches tier 2, so no 10 fee
        ("1001", "60.04"),  # 50 + 1 × 0.04 + 10 fee = 60.04
        ("1000.5", "60.02"),  # 50 + 0.5 × 0.04 + 10 = 60.02 (a part of a unit falls in tier 2)
        ("5000", "220"),  # 50 + 4000 × 0.04 + 10 = 220; up_to 5000 is inclusive, tier 3 empty
        ("6000", "255"),  # 220 + 1000 × 0.03 + 5 = 255
        ("0.5", "0.025"),  # 0.5 × 0.05
    ],
)
def test_graduated_prices_each_tier_plus_its_fee_if_a_unit_falls_in_it(quantity: str, expected: str) -> None:
    assert price(GRADUATED, q(quantity)) == q(expected)


def test_graduated_first_tier_fee_applies_from_the_first_unit() -> None:
    # GIVEN a first tier with a 100 fee
    charge = Charge(PricingModel.GRADUATED, meter="m", tiers=tiers(("10", "1", "100"), (None, "0.5", "0")))

    # THEN one unit costs 1 × 1 + 100 = 101, and twelve cost 10 × 1 + 100 + 2 × 0.5 = 111
    assert price(charge, Fraction(1)) == 101
    assert price(charge, Fraction(12)) == 111


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("1000", "51"),  # q == up_to stays in tier 1: 1000 × 0.05 + 1 = 51
        ("1000.5", "42.02"),  # tier 2 for all: 1000.5 × 0.04 + 2 = 40.02 + 2 = 42.02
        ("5000", "202"),  # q == up_to of tier 2: 5000 × 0.04 + 2 = 202
        ("5001", "150.03"),  # tier 3 for all: 5001 × 0.03 + 0 = 150.03
        ("1", "1.05"),  # 1 × 0.05 + 1
    ],
)
def test_volume_prices_the_whole_quantity_at_the_tier_it_falls_in(quantity: str, expected: str) -> None:
    assert price(VOLUME, q(quantity)) == q(expected)


@pytest.mark.parametrize("charge", [PER_UNIT, PACKAGE, GRADUATED, VOLUME], ids=lambda c: c.model.value)
def test_a_usage_charge_with_zero_quantity_costs_zero_even_with_fees(charge: Charge) -> None:
    # GIVEN volume's tier 1 has a 1 fee: still nothing is owed for no usage
    assert price(charge, Fraction(0)) == 0


def test_zero_quantity_costs_zero_under_a_first_tier_fee() -> None:
    charge = Charge(PricingModel.GRADUATED, meter="m", tiers=tiers((None, "1", "100")))
    assert price(charge, Fraction(0)) == 0


def test_flat_is_its_amount_times_the_share_of_the_period_subscribed() -> None:
    # v2: the quantity of a flat line is the subscribed share of the month (1 for all of it)
    assert price(FLAT, Fraction(1)) == 99
    assert price(FLAT, Fraction(16, 30)) == Fraction(99 * 16, 30)  # 52.8: from the 15th of a 30-day month


def test_prices_are_exact_fractions_not_rounded() -> None:
    # GIVEN a third of a unit at 0.10: 1/30, which no decimal holds
    charge = Charge(PricingModel.PER_UNIT, meter="m", unit_price=Decimal("0.10"))
    assert price(charge, Fraction(1, 3)) == Fraction(1, 30)
