"""Rate: each tenant's drafts for the open period (spend to date), and spend alerts announced once.

Triggered by new partial states. For every tenant in them it re-rates the period with the same
billing code as the invoice (``billing.bill_period``, all the tenant's subscriptions in the period,
opening with the time-weighted values the previous period's close stored), from the tenant
bucket's rollup and the partials after it, as of now: a time-weighted value holds until now, never
projected to the period's end (SPEC §7). It stores the tenant's drafts, one per subscription (the
invoice as it stands, ``state: draft``, no number, no credits drawn: grants are drawn at issue),
packed in one running item with their sum; for each catalog threshold the spend has reached
creates an alert record (conditional: one per threshold) and publishes it until the record says it
was published. A crash between publishing and marking can publish an alert twice; it carries a
stable ``alert_id`` for consumers to drop the repeat.

Rate also keeps the reads bounded: once a period has gathered enough partials after its
rollups, it seals the open window and rolls it up (see ``ledger``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

import orjson

from meterline.billing import bill_period
from meterline.catalog import Catalog
from meterline.heap import collector_paused
from meterline.invoice import Invoice
from meterline.periods import Period
from meterline.ports import Item, Publisher, Store
from meterline.topology import BILLING_ALERTS, CHARGES_TABLE
from meterline.usage import StateKey

from .invoices import alert_item, running_item, spend_of
from .ledger import PeriodLedger, billing_period_of, is_closed, is_partial, periods_with_usage

TABLE = CHARGES_TABLE.name


class RunningCharges:
    def __init__(self, catalog: Catalog, store: Store, publisher: Publisher) -> None:
        self.catalog = catalog
        self.store = store
        self.publisher = publisher
        self.closings: dict[Period, dict[str, dict[StateKey, Decimal]]] = {}

    def run(self, new_items: Iterable[Item], now: datetime | None = None) -> int:
        """Re-rate the tenants of the new partials among the items; return how many alerts were published."""
        touched: dict[Period, list[Item]] = {}
        for item in new_items:
            if is_partial(item):
                touched.setdefault(billing_period_of(item), []).append(item)
        with collector_paused():  # partials decoded, merged and rolled up: trees, no cycles
            return sum(self.rate_period(period, items, now) for period, items in sorted(touched.items()))

    def run_open(self, now: datetime | None = None) -> int:
        """Re-rate every tenant with usage not rolled up yet, in every open period (for clouds whose
        ledger cannot announce new partials: a timer calls this)."""
        published = 0
        for period in periods_with_usage(self.store):
            if is_closed(self.store, period):
                continue
            with collector_paused():
                published += self.rate_period(period, None, now)
        return published

    def rate_period(self, period: Period, partials: list[Item] | None, now: datetime | None) -> int:
        """Re-rate the tenants of the partials (None: of every open partial) for the period's ledger.
        Late usage in them (of an earlier period) is amended when that period closes."""
        ledger = PeriodLedger(self.catalog, self.store, period)
        head = ledger.head()
        open_partials = ledger.open_partials(head)
        rated = open_partials if partials is None else partials
        if ledger.due_for_rollup(head, open_partials):
            ledger.seal(now or datetime.now(UTC))
            # what joined the window since it was read is rated here too, now that it is rolled up
            folded = {tenant for tenant, p in ledger.roll_up() if p is period or p == period}
            tenants = _tenants_of(ledger, rated, period) | folded
            book = ledger.book(tenants)
        else:
            tenants = _tenants_of(ledger, rated, period)
            book = ledger.book(tenants, head, open_partials)
        now = now or datetime.now(UTC)
        bill = bill_period(self.catalog, book, period, self.openings(period), rated=tenants, until=now)
        invoices: dict[str, list[Invoice]] = {}
        for invoice in bill.invoices:
            invoices.setdefault(invoice.tenant, []).append(invoice)
        return sum(
            self.rate(tenant, period, invoices[tenant], len(open_partials))
            for tenant in sorted(tenants)
            if tenant in invoices
        )

    def openings(self, period: Period) -> dict[str, dict[StateKey, Decimal]]:
        """The time-weighted values in force at the period's start, as the previous period's close
        stored them: read once that period is closed (none before), then kept."""
        previous = period.previous()
        closing = self.closings.get(previous)
        if closing is None:
            if not is_closed(self.store, previous):
                return {}
            closing = self.closings[previous] = PeriodLedger(self.catalog, self.store, previous).closing()
        return closing

    def rate(self, tenant: str, period: Period, invoices: list[Invoice], open_partials: int) -> int:
        """Store the tenant's drafts and running charges (all its invoices of the period), and
        announce the spend thresholds they reach."""
        customer = self.catalog.customers[tenant]
        spend = spend_of(invoices)
        currency = invoices[0].currency
        self.store.put(TABLE, running_item(tenant, period, invoices, open_partials))
        published = 0
        for threshold in customer.spend_alerts:
            if spend.decimal < threshold:
                break
            alert = alert_item(tenant, period, threshold, spend)
            stored = self.store.put_new(TABLE, alert) or alert
            if stored.get("published") is True:
                continue
            body = {
                "alert_id": f"{tenant}|{period}|{threshold}",
                "tenant": tenant,
                "period": str(period),
                "threshold": str(threshold),
                "spend": str(stored["spend"]),
                "currency": currency,
            }
            self.publisher.publish(BILLING_ALERTS.name, tenant.encode(), orjson.dumps(body))
            self.publisher.flush()
            self.store.put(TABLE, {**stored, "published": True})
            published += 1
        return published


def _tenants_of(ledger: PeriodLedger, partials: list[Item], period: Period) -> set[str]:
    """The tenants with usage of ``period`` in the partials (the ledger remembers those it has read)."""
    # ``is`` first: a ledger reads each month as one object, and a dataclass's == compares fields
    tenants_in = ledger.tenants_in
    return {tenant for item in partials for tenant, p in tenants_in(item) if p is period or p == period}
