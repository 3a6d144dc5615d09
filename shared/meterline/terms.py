"""Terms: the part of a period each subscription is active, which one invoice covers (SPEC §5).

Subscriptions start and end at UTC midnights, so a term is a run of whole days of its month,
written ``Days``: (first day, day after the last), 1-based. A tenant's usage is kept per segment of
the month cut at its subscriptions' boundaries, so each term's usage is whole segments.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from functools import cache
from itertools import pairwise

from meterline.catalog import Catalog, Customer, Plan, Subscription
from meterline.periods import Period

Days = tuple[int, int]
"""Days of a month: the first, and the one after the last (1-based, so a 30-day month is (1, 31))."""


@cache
def days_in(period: Period) -> int:
    return calendar.monthrange(period.year, period.month)[1]


@cache
def whole_month(period: Period) -> Days:
    return (1, days_in(period) + 1)


@cache
def by_day(period: Period) -> tuple[Days, ...]:
    """The month cut into its days: a cut every catalog's segments are made of."""
    return tuple((day, day + 1) for day in range(1, days_in(period) + 1))


@cache
def day_start(period: Period, day: int) -> datetime:
    """The first instant of ``day`` of the period (day ``days_in + 1``: the period's end); made once:
    every tenant's time-weighted usage is held between the same few."""
    return datetime(period.year, period.month, 1, tzinfo=UTC) + timedelta(days=day - 1)


@dataclass(frozen=True, slots=True)
class Term:
    subscription: Subscription
    period: Period
    days: Days
    plan: Plan
    """The version in effect on the term's first day: one starting later in the period waits for the next."""

    @property
    def share(self) -> Fraction:
        """Active days / days in the month: what flat charges and the commitment are prorated by."""
        first, end = self.days
        return Fraction(end - first, days_in(self.period))


def terms(catalog: Catalog, customer: Customer, period: Period) -> list[Term]:
    """The customer's invoices' terms in the period: each subscription active at least one day."""
    found: list[Term] = []
    for subscription in customer.subscriptions:
        days = _clip(subscription, period)
        if days is None:
            continue
        plan = catalog.version_on(subscription.plan, date(period.year, period.month, days[0]))
        assert plan is not None, "the catalog checks that a subscription starts on a version"
        found.append(Term(subscription, period, days, plan))
    return found


def segments(catalog: Catalog, tenant: str, period: Period) -> tuple[Days, ...]:
    """The month cut at every boundary of the tenant's subscriptions that falls inside it."""
    month = whole_month(period)
    customer = catalog.customers.get(tenant)
    if customer is None:
        return (month,)
    first, after = _dates(period)
    cuts = {
        edge.day
        for subscription in customer.subscriptions
        for edge in (subscription.start, subscription.end)
        if edge is not None and first < edge < after
    }
    if not cuts:
        return (month,)
    return tuple(pairwise([month[0], *sorted(cuts), month[1]]))


def cutter(catalog: Catalog) -> Callable[[str, Period], tuple[Days, ...]]:
    """``segments`` for one catalog, remembered: how a ``UsageBook`` cuts each tenant's months."""
    known: dict[tuple[str, Period], tuple[Days, ...]] = {}

    def cut(tenant: str, period: Period) -> tuple[Days, ...]:
        found = known.get((tenant, period))
        if found is None:
            found = known[(tenant, period)] = segments(catalog, tenant, period)
        return found

    return cut


def _clip(subscription: Subscription, period: Period) -> Days | None:
    """The days of the month the subscription covers, or None."""
    first, after = _dates(period)
    start = max(subscription.start, first)
    end = after if subscription.end is None else min(subscription.end, after)
    if start >= end:
        return None
    return (start.day, days_in(period) + 1 if end == after else end.day)


@cache
def _dates(period: Period) -> tuple[date, date]:
    """The period's first day, and the first day after it."""
    return date(period.year, period.month, 1), date(
        period.year + period.month // 12, period.month % 12 + 1, 1
    )
