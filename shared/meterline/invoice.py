"""Invoices: lines, and the totals that always add up (SPEC §3, §4, §9); usage no invoice bills."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any

from meterline.credits import Drawdown
from meterline.metering import Group
from meterline.money import Money
from meterline.periods import Period


@dataclass(frozen=True, slots=True)
class Line:
    meter: str
    group: dict[str, Any]
    quantity: Fraction
    amount: Money

    def to_json(self) -> dict[str, Any]:
        return {
            "meter": self.meter,
            "group": group_to_json(self.group),
            "quantity": format_quantity(self.quantity),
            "amount": str(self.amount),
        }


@dataclass(frozen=True, slots=True)
class Invoice:
    tenant: str
    period: Period
    plan: str
    version: int
    currency: str
    lines: tuple[Line, ...]
    subtotal: Money
    discount: Money
    commitment_true_up: Money
    credits_applied: Money
    total: Money
    subscription: str = ""
    """The subscription's key (``Subscription.key``): with tenant and period, the invoice's identity."""
    credit_drawdowns: tuple[Drawdown, ...] = ()
    catalog_digest: str = ""
    number: str | None = None
    """Assigned when the invoice is issued; None offline."""

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "subscription": self.subscription,
            "number": self.number,
            "plan": self.plan,
            "version": self.version,
            "currency": self.currency,
            "lines": [line.to_json() for line in self.lines],
            "subtotal": str(self.subtotal),
            "discount": str(self.discount),
            "commitment_true_up": str(self.commitment_true_up),
            "credits_applied": str(self.credits_applied),
            "credit_drawdowns": [drawdown.to_json() for drawdown in self.credit_drawdowns],
            "total": str(self.total),
            "catalog_digest": self.catalog_digest,
        }


class UnbilledReason(StrEnum):
    NO_CUSTOMER = "no_customer"
    NO_SUBSCRIPTION = "no_subscription"


@dataclass(frozen=True, slots=True)
class UnbilledUsage:
    """Usage of a tenant at a time no subscription covers (SPEC §5): reported, never dropped."""

    tenant: str
    period: Period
    meter: str
    group: dict[str, Any]
    quantity: Fraction
    reason: UnbilledReason

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "period": str(self.period),
            "meter": self.meter,
            "group": group_to_json(self.group),
            "quantity": format_quantity(self.quantity),
            "reason": self.reason.value,
        }


def group_to_json(group: dict[str, Any]) -> dict[str, Any]:
    """A line's group as JSON: decimals and integers past 64 bits as text."""
    return {name: value if type(value) is str else _json_scalar(value) for name, value in group.items()}


def group_json(names: tuple[str, ...], group: Group) -> dict[str, Any]:
    return dict(zip(names, group, strict=True))


def format_quantity(quantity: Fraction) -> str:
    """Exact decimal text when the quantity has one; else 18 places (display only, never priced)."""
    numerator, denominator = quantity.numerator, quantity.denominator
    if denominator == 1:
        return str(numerator)  # most quantities are whole: counts, peaks, integer sums
    if _TEN_TO_18 % denominator == 0:
        return _plain(numerator * (_TEN_TO_18 // denominator), 18)  # GB of bytes, a day's share
    rest = denominator
    twos = fives = 0
    while rest % 2 == 0:
        rest //= 2
        twos += 1
    while rest % 5 == 0:
        rest //= 5
        fives += 1
    if rest == 1:
        places = max(twos, fives)  # the denominator divides 10**places
        return _plain(numerator * 10**places // denominator, places)
    return _plain(round(quantity * _TEN_TO_18), 18)


_TEN_TO_18 = 10**18


def _plain(whole: int, places: int) -> str:
    """``whole`` × 10**-places as plain decimal text, without trailing zeros (``-0.25``, ``3``)."""
    digits = str(abs(whole)).rjust(places + 1, "0")
    integral, fraction = digits[:-places], digits[-places:].rstrip("0")
    sign = "-" if whole < 0 else ""
    return f"{sign}{integral}.{fraction}" if fraction else f"{sign}{integral}"


def _json_scalar(value: Any) -> Any:
    """Group values as JSON: decimals, and integers past 64 bits (which orjson cannot write), as text."""
    if isinstance(value, Decimal) or (type(value) is int and not -(2**63) <= value < 2**64):
        return str(value)
    return value
