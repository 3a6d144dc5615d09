"""Currencies, their ISO 4217 minor units, the one rounding rule of SPEC §3, and Money: what that
rule makes, combined exactly afterwards.

Money is a whole number of a currency's minor units. It is made only by ``round_money`` (the rule)
or ``Money.parse`` (stored text); adding, subtracting and comparing it are integer operations, so
no amount is ever rounded again by a Decimal context's 28 digits. Mixing currencies raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation
from fractions import Fraction
from functools import cache

import iso4217


class UnknownCurrencyError(ValueError):
    pass


class CurrencyMismatchError(ValueError):
    """Two amounts of different currencies combined or compared."""


@dataclass(frozen=True, slots=True)
class Money:
    """``minor`` units of ``currency`` (cents of USD, yen of JPY). Equal only to the same amount of
    the same currency; ordering and arithmetic across currencies raise."""

    minor: int
    currency: str

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """Stored or printed text of an amount (``"12.30"``, ``"-0.5"``), exactly; ValueError when
        it is not a whole number of the currency's minor units."""
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{text!r} is not a decimal amount") from None
        if not number.is_finite():
            raise ValueError(f"{text!r} is not a decimal amount")
        numerator, denominator = number.as_integer_ratio()
        minor, rest = divmod(numerator * 10 ** minor_units(currency), denominator)
        if rest:
            raise ValueError(f"{text!r} is not a whole number of {currency} minor units")
        return cls(minor, currency)

    def zero(self) -> Money:
        """No money, of this currency."""
        return Money(0, self.currency)

    @property
    def decimal(self) -> Decimal:
        """The amount as an exact Decimal, at the currency's scale (``12.30``, never ``12.3``)."""
        return shifted(self.minor, minor_units(self.currency))

    def as_fraction(self) -> Fraction:
        return Fraction(self.minor, 10 ** minor_units(self.currency))

    def __str__(self) -> str:
        """What ``str(self.decimal)`` writes (``12.30``, ``-0.05``, ``7``), in integers: every invoice
        writes several amounts. ISO 4217 minor units are at most 4, so Decimal's text is never
        exponential here."""
        places = minor_units(self.currency)
        if not places:
            return str(self.minor)
        digits = str(abs(self.minor)).rjust(places + 1, "0")
        return f"{'-' if self.minor < 0 else ''}{digits[:-places]}.{digits[-places:]}"

    def __bool__(self) -> bool:
        return self.minor != 0

    def _same(self, other: Money) -> int:
        if type(other) is not Money:
            raise TypeError(f"cannot combine money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(f"{self.currency} and {other.currency} amounts do not combine")
        return other.minor

    def __add__(self, other: Money) -> Money:
        return Money(self.minor + self._same(other), self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.minor - self._same(other), self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        return self.minor < self._same(other)

    def __le__(self, other: Money) -> bool:
        return self.minor <= self._same(other)

    def __gt__(self, other: Money) -> bool:
        return self.minor > self._same(other)

    def __ge__(self, other: Money) -> bool:
        return self.minor >= self._same(other)


@cache
def minor_units(currency: str) -> int:
    """Decimal places of the currency's minor unit (USD 2, JPY 0, KWD 3), from ISO 4217."""
    try:
        exponent = iso4217.Currency(currency).exponent
    except ValueError:
        exponent = None
    if exponent is None:
        raise UnknownCurrencyError(f"{currency!r} is not an ISO 4217 currency with a minor unit")
    return int(exponent)


@cache
def minor_scale(currency: str) -> int:
    """How many minor units make one of the currency (100 for USD): made once, every line is
    rounded with it."""
    scale: int = 10 ** minor_units(currency)
    return scale


def round_money(amount: Decimal | Fraction | int, currency: str) -> Money:
    """Round once to the currency's minor unit, half away from zero (ROUND_HALF_UP on Decimal)."""
    if isinstance(amount, Decimal):
        numerator, denominator = amount.as_integer_ratio()
    else:
        numerator, denominator = amount.numerator, amount.denominator
    return round_ratio(numerator, denominator, currency)


def round_ratio(numerator: int, denominator: int, currency: str) -> Money:
    """``round_money`` of numerator / denominator (denominator > 0), in integers: no Fraction is
    made (rating makes one per line otherwise). The ratio need not be in lowest terms: scaling both
    by a factor changes neither the whole part nor which side of one half the remainder falls."""
    whole: int
    whole, remainder = divmod(abs(numerator) * minor_scale(currency), denominator)
    if 2 * remainder >= denominator:
        whole += 1  # half away from zero
    return Money(-whole if numerator < 0 else whole, currency)


def round_part(amount: Money, numerator: int, denominator: int) -> Money:
    """``round_money`` of ``amount`` × numerator / denominator (a discount's share of a subtotal)."""
    currency = amount.currency
    return round_ratio(amount.minor * numerator, denominator * 10 ** minor_units(currency), currency)


def shifted(whole: int, places: int) -> Decimal:
    """``whole`` × 10**-places, exactly: scaleb rounds to its context's precision (28 digits by
    default), so it is given one with room for any number of digits."""
    return Decimal(whole).scaleb(-places, _EXACT)


_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


@cache
def decimal_ratio(number: Decimal) -> tuple[int, int]:
    """A catalog's number (a price, a bound, a meter's divide_by) as numerator and denominator,
    made once: rating uses the same few for thousands of lines."""
    return number.as_integer_ratio()
