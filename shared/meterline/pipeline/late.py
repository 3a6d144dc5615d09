"""Late usage at a close: what this period's ledger holds of earlier, issued periods.

Usage of a period that arrives after it closed is billed in the next open period's ledger,
labelled with its own period. At that period's close, each late period still within the amendment
window is re-rated in full (``close.Closer.amend``): from the usage billed until now plus the late
usage, opening with the values in force at its start. Late usage may also change what was in force
when this period started (a late time-weighted sample can be the last of its period), so the
tenants with late usage have their values carried again through every period since the earliest
late one. Late usage of a period before the window is reported, never billed.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

from meterline.billing import Openings
from meterline.catalog import Catalog
from meterline.invoice import format_quantity, group_json
from meterline.periods import Period
from meterline.ports import Store
from meterline.rating import usage_order
from meterline.splits import Opening, closing_values, split_usage
from meterline.usage import Segments, StateKey, UsageBook

from .ledger import PeriodLedger


class Late:
    """The usage of earlier, issued periods that this period's ledger holds, and what it changes:
    everything now known of those periods (to amend them), and the values in force at their starts
    and at this period's start."""

    def __init__(
        self, catalog: Catalog, store: Store, period: Period, book: UsageBook, since: Period
    ) -> None:
        """``since``: the first period late usage may amend (usage before it carries nothing)."""
        self.catalog = catalog
        self.store = store
        self.period = period
        self.book = book
        self.late = sorted({(p, tenant) for tenant, p in book.states if since <= p < period})
        self.beyond = sorted({(p, tenant) for tenant, p in book.states if p < since})
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

    def store_closings(self) -> None:
        """Store the values carried again at the end of each period replayed (not this one: its
        close stores its own), so a later close replaying from one of them starts right."""
        for period in sorted(self.opening_of):
            if period < self.period:
                PeriodLedger(self.catalog, self.store, period).update_closing(
                    self.opening_of[period.next()], by=self.period
                )

    def earliest(self) -> dict[str, Period]:
        """Each tenant with late usage, and its earliest late period."""
        found: dict[str, Period] = {}
        for period, tenant in self.late:  # in period order
            found.setdefault(tenant, period)
        return dict(sorted(found.items()))

    def opening(self, tenant: str, period: Period) -> Opening:
        """The tenant's values in force at the start of a late ``period``."""
        return self.opening_of[period].get(tenant, {})

    def out_of_window(self) -> list[dict[str, Any]]:
        """The late usage of periods before the window, by tenant, period, meter and group."""
        found = []
        for period, tenant in self.beyond:
            usage = split_usage(self.catalog, period, self.book.segments(tenant, period), [], {}).rest
            for (meter, group), quantity in sorted(usage.items(), key=usage_order):
                found.append(
                    {
                        "tenant": tenant,
                        "period": str(period),
                        "meter": meter,
                        "group": group_json(self.catalog.meters[meter].group_by, group),
                        "quantity": format_quantity(Fraction(quantity)),
                        "reason": "out_of_window",
                    }
                )
        return found
