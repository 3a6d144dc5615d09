"""Late usage at a close: what this period's ledger holds of earlier, closed periods.

Usage of a period that arrives after it closed is billed in the next open period's ledger,
labelled with its own period. At that period's close it becomes adjustment lines (the late
period re-rated with and without it, line by line, per subscription), and it may change what
was in force when this period started: a late time-weighted sample can be the last of its period.
So the tenants with late usage have their values carried again through every period since the
earliest late one, from their usage as the ledgers now hold it.
"""

from __future__ import annotations

from decimal import Decimal

import orjson

from meterline.billing import Openings
from meterline.catalog import Catalog
from meterline.invoice import Line
from meterline.periods import Period
from meterline.ports import Store
from meterline.rating import usage_lines
from meterline.splits import Opening, closing_values, split_usage
from meterline.terms import terms
from meterline.usage import Segments, StateKey, UsageBook

from .ledger import PeriodLedger


class Late:
    """The usage of earlier, closed periods that this period's ledger holds, and what it changes:
    adjustment lines for those periods, and the values in force at this period's start."""

    def __init__(self, catalog: Catalog, store: Store, period: Period, book: UsageBook) -> None:
        self.catalog = catalog
        self.store = store
        self.period = period
        self.book = book
        first = self.catalog.first_period  # usage before billing starts is billed nowhere, carries nothing
        self.late = sorted({(p, tenant) for tenant, p in book.states if first <= p < period})
        self.tenants = {tenant for _, tenant in self.late}
        self.history = UsageBook()
        """What ledgers before this one hold for those tenants: their usage billed until now."""
        self.opening_of: dict[Period, Openings] = {}
        if self.late:
            self._replay()

    def _replay(self) -> None:
        """Read the usage those tenants had billed since the earliest late period, and carry their
        time-weighted values through each period again, late usage included."""
        first = self.late[0][0]
        ledger_period = first
        while ledger_period < self.period:
            self.history.merge(PeriodLedger(self.catalog, self.store, ledger_period).book(self.tenants))
            ledger_period = ledger_period.next()
        openings: Openings = PeriodLedger(self.catalog, self.store, first.previous()).closing(self.tenants)
        period = first
        while period < self.period:
            self.opening_of[period] = openings
            openings = {tenant: self.closing(tenant, period, openings) for tenant in self.tenants}
            period = period.next()
        self.opening_of[self.period] = openings

    def closing(self, tenant: str, period: Period, openings: Openings) -> dict[StateKey, Decimal]:
        everything = self.everything(tenant, period)
        return closing_values(self.catalog, period, everything, openings.get(tenant, {}))

    def everything(self, tenant: str, period: Period) -> Segments:
        """The tenant's usage of ``period``: billed before, and arrived late into this ledger."""
        combined = UsageBook()
        combined.merge_states((tenant, period), self.history.segments(tenant, period))
        combined.merge_states((tenant, period), self.book.segments(tenant, period))
        return combined.segments(tenant, period)

    def openings(self) -> Openings:
        """Values in force at this period's start: as the previous close stored them, replayed for
        the tenants with late usage."""
        stored = PeriodLedger(self.catalog, self.store, self.period.previous()).closing()
        replayed = self.opening_of.get(self.period, {})
        return {**{t: v for t, v in stored.items() if t not in self.tenants}, **replayed}

    def adjustments(self) -> dict[str, tuple[Line, ...]]:
        """Lines for the late usage: each late period re-rated with and without it, per subscription."""
        by_tenant: dict[str, list[Line]] = {}
        for late_period, tenant in self.late:
            customer = self.catalog.customers.get(tenant)
            if customer is None:
                continue
            opening = self.opening_of[late_period].get(tenant, {})
            before, after = self.history.segments(tenant, late_period), self.everything(tenant, late_period)
            lines = self.difference(tenant, late_period, opening, before, after)
            by_tenant.setdefault(tenant, []).extend(lines)
        return {tenant: tuple(lines) for tenant, lines in by_tenant.items()}

    def difference(
        self, tenant: str, late: Period, opening: Opening, before: Segments, after: Segments
    ) -> list[Line]:
        customer = self.catalog.customers[tenant]
        active = terms(self.catalog, customer, late)
        ranges = [term.days for term in active]
        old = split_usage(self.catalog, late, before, ranges, opening).parts
        new = split_usage(self.catalog, late, after, ranges, opening).parts
        lines = []
        for term, old_usage, new_usage in zip(active, old, new, strict=True):
            charges = self.catalog.charges_for(customer, term.plan)
            currency = term.plan.currency
            was = _by_line(usage_lines(self.catalog, charges, currency, old_usage, term.share))
            now = _by_line(usage_lines(self.catalog, charges, currency, new_usage, term.share))
            for key, line in now.items():
                previous = was.get(key)
                quantity = line.quantity - (previous.quantity if previous else 0)
                amount = line.amount - (previous.amount if previous else 0)
                if quantity or amount:
                    lines.append(Line(line.meter, line.group, quantity, amount, late, term.subscription.key))
        return lines


def _by_line(lines: list[Line]) -> dict[tuple[str, bytes], Line]:
    return {
        (line.meter, orjson.dumps(line.group, option=orjson.OPT_SORT_KEYS, default=str)): line
        for line in lines
    }
