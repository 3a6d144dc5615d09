"""Credit grants as balances across periods (SPEC §6).

A customer's invoices draw, after discount and true-up, from the grants eligible in their period:
lower ``priority`` first, then the earlier ``expires`` (none last), the earlier ``effective_from``,
then ``id``; never more than a grant's balance left by earlier invoices, never more than is due.
v1 ``credits`` are a grant of that much for each period, expiring at its end, named
``credits:<period>``. Amounts are rounded once to the currency's minor unit, so balances and
drawdowns are exact money.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from meterline.catalog import V1_CREDITS_PREFIX, CreditGrant, Customer
from meterline.money import Money, round_money
from meterline.periods import Period


@dataclass(frozen=True, slots=True)
class Drawdown:
    grant: str
    amount: Money

    def to_json(self) -> dict[str, str]:
        return {"grant": self.grant, "amount": str(self.amount)}


@dataclass(slots=True)
class Balance:
    """One grant's amount, and what became of it: drawn, expired, or still there."""

    grant: CreditGrant
    amount: Money
    drawn: Money
    expired: Money

    @property
    def remaining(self) -> Money:
        return self.amount - self.drawn - self.expired

    def eligible(self, period: Period) -> bool:
        grant = self.grant
        return grant.effective_from < period.end.date() and (
            grant.expires is None or grant.expires > period.start.date()
        )

    def order(self) -> tuple[int, bool, date, date, str]:
        grant = self.grant
        expires = grant.expires or date.max
        return (grant.priority, grant.expires is None, expires, grant.effective_from, grant.id)

    def to_json(self) -> dict[str, Any]:
        return {
            "grant": self.grant.id,
            "amount": str(self.amount),
            "drawn": str(self.drawn),
            "expired": str(self.expired),
            "remaining": str(self.remaining),
        }


class Credits:
    """One customer's grants and their balances, drawn period after period in period order."""

    def __init__(self, customer: Customer, currency: str, drawn: Mapping[str, Money] | None = None) -> None:
        """``drawn``: what invoices already issued drew from each grant (a pipeline resuming)."""
        self.customer = customer
        self.currency = currency
        self.zero = round_money(0, currency)
        self.balances = [self._balance(grant) for grant in customer.credit_grants]
        for balance in self.balances:
            balance.drawn = (drawn or {}).get(balance.grant.id, self.zero)

    @classmethod
    def of(cls, customer: Customer, currency: str) -> Credits | None:
        """The customer's credits, or None when it has neither grants nor v1 credits."""
        if not customer.credit_grants and customer.credits is None:
            return None
        return cls(customer, currency)

    def _balance(self, grant: CreditGrant) -> Balance:
        return Balance(grant, round_money(grant.amount, self.currency), self.zero, self.zero)

    def open(self, period: Period) -> None:
        """Start rating ``period``: v1 credits grant their amount for it."""
        if self.customer.credits is not None:
            grant = CreditGrant(
                f"{V1_CREDITS_PREFIX}{period}", self.customer.credits, period.start.date(), period.end.date()
            )
            if not any(balance.grant.id == grant.id for balance in self.balances):
                self.balances.append(self._balance(grant))

    @classmethod
    def reopened(
        cls,
        customer: Customer,
        currency: str,
        period: Period,
        now: Period,
        drawn_for_period: Mapping[str, Money],
        drawn_elsewhere: Mapping[str, Money],
    ) -> tuple[Credits, list[str]]:
        """What an amendment of ``period`` issued while ``now`` is open may draw on (SPEC §7): what
        the period's documents drew, plus what is left of each grant that still pays now, or that
        expired with ``period`` itself (v1 credits: its remainder was never anyone else's). A grant
        that expired since may keep what it paid, no more: returned with its id when it had more."""
        credits = cls(customer, currency, drawn_elsewhere)
        credits.open(period)
        expired_since = []
        for balance in credits.balances:
            grant = balance.grant
            if not balance.eligible(period) or grant.expires is None or grant.expires > now.start.date():
                continue  # never paid the period, or pays now
            if grant.expires <= period.end.date():
                continue  # expired with the period: all it had left is the period's
            kept = drawn_for_period.get(grant.id, credits.zero)
            if balance.remaining > kept:
                expired_since.append(grant.id)
            balance.expired = balance.remaining - kept
        return credits, expired_since

    def draw(self, period: Period, due: Money) -> tuple[Drawdown, ...]:
        """Pay up to ``due`` of an invoice of ``period`` from the eligible grants, in SPEC §6's order."""
        drawdowns = []
        zero = self.zero
        left = max(due, zero)
        for balance in sorted(self.balances, key=Balance.order):
            if left <= zero:
                break
            if not balance.eligible(period) or balance.remaining <= zero:
                continue
            amount = min(balance.remaining, left)
            balance.drawn += amount
            left -= amount
            drawdowns.append(Drawdown(balance.grant.id, amount))
        return tuple(drawdowns)

    def close(self, period: Period) -> None:
        """End ``period``: a grant that no later period may draw from expires with what is left."""
        end = period.end.date()
        for balance in self.balances:
            if balance.grant.expires is not None and balance.grant.expires <= end:
                balance.expired += balance.remaining

    def to_json(self) -> list[dict[str, Any]]:
        return [balance.to_json() for balance in sorted(self.balances, key=Balance.order)]
