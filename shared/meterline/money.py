"""Currencies, their ISO 4217 minor units, and the one rounding rule of SPEC §3."""

from __future__ import annotations

from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from fractions import Fraction
from functools import cache

import iso4217


class UnknownCurrencyError(ValueError):
    pass


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


def round_money(amount: Decimal | Fraction | int, currency: str) -> Decimal:
    """Round once to the currency's minor unit, half away from zero (ROUND_HALF_UP on Decimal)."""
    if isinstance(amount, Decimal):
        numerator, denominator = amount.as_integer_ratio()
    else:
        numerator, denominator = amount.numerator, amount.denominator
    return _round_ratio(numerator, denominator, minor_units(currency))


def _round_ratio(numerator: int, denominator: int, places: int) -> Decimal:
    """numerator / denominator rounded to ``places``, in integers: no Fraction is made (rating makes
    one per line otherwise). The ratio need not be in lowest terms: scaling both by a factor
    changes neither the whole part nor which side of one half the remainder falls."""
    whole, remainder = divmod(abs(numerator) * 10**places, denominator)
    if 2 * remainder >= denominator:
        whole += 1
    return shifted(-whole if numerator < 0 else whole, places)


def shifted(whole: int, places: int) -> Decimal:
    """``whole`` × 10**-places, exactly: scaleb rounds to its context's precision (28 digits by
    default), so it is given one with room for any number of digits."""
    return Decimal(whole).scaleb(-places, _EXACT)


_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
