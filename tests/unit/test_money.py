"""Money: whole minor units of one currency, made by the rounding rule or read from stored text,
combined exactly (SPEC §3: the parts of an invoice add up to its total, at any size)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.amendments import Issued, amendment
from meterline.invoice import Invoice, Line
from meterline.money import CurrencyMismatchError, Money, minor_units, round_money
from meterline.periods import Period

PROPERTY = settings(max_examples=200, deadline=None)
CURRENCIES = st.sampled_from(["USD", "JPY", "KWD"])
# past 28 digits on purpose: where a Decimal context would round
AMOUNTS = st.fractions(max_denominator=10**6) | st.integers(-(10**40), 10**40).map(
    lambda n: Fraction(n, 1000)
)


@PROPERTY
@given(currency=CURRENCIES, amounts=st.lists(AMOUNTS, max_size=12))
def test_a_sum_of_money_is_the_exact_sum_of_its_rounded_amounts(
    currency: str, amounts: list[Fraction]
) -> None:
    # GIVEN amounts rounded once to the currency's minor unit
    rounded = [round_money(amount, currency) for amount in amounts]

    # WHEN they are added, and the first taken away again
    total = sum(rounded, round_money(0, currency))

    # THEN the sum is the exact Fraction sum, written exactly, and subtraction undoes addition
    exact = sum((money.as_fraction() for money in rounded), Fraction(0))
    assert total.as_fraction() == exact
    assert Fraction(str(total)) == exact
    if rounded:
        assert (total - rounded[0]).as_fraction() == exact - rounded[0].as_fraction()
        assert -total + total == round_money(0, currency)
        assert (total < rounded[0]) == (exact < rounded[0].as_fraction())


@PROPERTY
@given(currency=CURRENCIES, amount=AMOUNTS)
def test_money_reads_back_what_it_writes(currency: str, amount: Fraction) -> None:
    # GIVEN an amount as the rounding rule makes it
    money = round_money(amount, currency)

    # WHEN its text is read back
    read = Money.parse(str(money), currency)

    # THEN it is the same money, written at the currency's minor unit, never in exponent form
    assert read == money
    text = str(money)
    assert "E" not in text
    places = minor_units(currency)
    assert (len(text.partition(".")[2]) if "." in text else 0) == places


def test_amounts_past_28_digits_subtract_exactly() -> None:
    # GIVEN 10**30 + 0.01 and 0.02 dollars (in a 28-digit Decimal context: 1.000000000000000000000000000E+30)
    large = Money.parse("1000000000000000000000000000000.01", "USD")
    small = Money.parse("0.02", "USD")

    # WHEN one is taken from the other
    difference = large - small

    # THEN the cent is kept
    assert str(difference) == "999999999999999999999999999999.99"


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [("12.30", "USD", 1230), ("-0.5", "USD", -50), ("7", "JPY", 7), ("1.001", "KWD", 1001), ("0", "KWD", 0)],
)
def test_stored_text_reads_as_whole_minor_units(text: str, currency: str, minor: int) -> None:
    assert Money.parse(text, currency).minor == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [("0.001", "USD"), ("0.5", "JPY"), ("NaN", "USD"), ("Infinity", "USD"), ("12,30", "USD")],
)
def test_text_that_is_not_whole_minor_units_is_refused(text: str, currency: str) -> None:
    with pytest.raises(ValueError, match=repr(text)):
        Money.parse(text, currency)


def test_amounts_of_different_currencies_do_not_combine() -> None:
    # GIVEN one dollar and one euro
    dollar, euro = Money.parse("1.00", "USD"), Money.parse("1.00", "EUR")

    # THEN adding, subtracting or ordering them raises; they are simply not equal
    for combine in (
        lambda: dollar + euro,
        lambda: dollar - euro,
        lambda: dollar < euro,
        lambda: dollar >= euro,
    ):
        with pytest.raises(CurrencyMismatchError, match="USD and EUR"):
            combine()
    assert dollar != euro


def test_an_amendment_of_amounts_past_28_digits_is_exact_to_the_cent() -> None:
    # GIVEN an issued invoice of 10**30 + 0.01 dollars, re-rated at 0.02 more
    issued_text = "1000000000000000000000000000000.01"
    issued = Issued()
    issued.add_invoice(
        {
            "currency": "USD",
            "lines": [{"meter": "m", "group": {}, "amount": issued_text}],
            **dict.fromkeys(("subtotal", "total"), issued_text),
            **dict.fromkeys(("discount", "commitment_true_up", "credits_applied"), "0.00"),
            "credit_drawdowns": [],
        },
        [Fraction(1)],
    )
    rerated_amount = Money.parse("1000000000000000000000000000000.03", "USD")
    zero = round_money(0, "USD")
    rerated = Invoice(
        tenant="org-42",
        period=Period(2026, 11),
        plan="p",
        version=1,
        currency="USD",
        lines=(Line("m", {}, Fraction(2), rerated_amount),),
        subtotal=rerated_amount,
        discount=zero,
        commitment_true_up=zero,
        credits_applied=zero,
        total=rerated_amount,
    )

    # WHEN the amendment is made
    change = amendment(rerated, issued)

    # THEN it is a debit note of exactly two cents
    assert change is not None
    written = change.to_json()
    assert written["kind"] == "debit_note"
    assert (written["subtotal_delta"], written["total_delta"]) == ("0.02", "0.02")
    assert written["lines"][0]["amount_delta"] == "0.02"
    assert written["discount_delta"] == "0.00"
