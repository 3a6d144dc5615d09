"""Close: a period, once past its grace window, becomes one immutable invoice per customer.

1. The period's open window is sealed for good first: from then on the aggregator bills any
   usage of the period in a later one (its transaction checks the fence), so the rollup made
   next holds all the period will ever have.
2. Each invoice is written with a conditional create: running the close twice, or two closers at
   once, leaves one invoice per tenant and period; a loser reads back the winner's.
3. Usage that arrived after its own period closed is billed here as adjustment lines: that
   period re-rated with and without it, line by line, the difference named with its period.
4. Invoices are published to ``billing.invoices`` until their record says published (a crash in
   between can publish one twice, with the same ``invoice_id``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson

from meterline.catalog import Catalog, Customer
from meterline.invoice import Invoice, Line
from meterline.periods import Period
from meterline.ports import Item, Publisher, Store
from meterline.rating import rate_tenant, usage_lines
from meterline.records import key_part
from meterline.topology import AGGREGATES_TABLE, BILLING_INVOICES, INVOICES_TABLE
from meterline.usage import UsageBook

from .ledger import PeriodLedger

AGGREGATES = AGGREGATES_TABLE.name
INVOICES = INVOICES_TABLE.name


class Closer:
    def __init__(self, catalog: Catalog, store: Store, publisher: Publisher, grace: timedelta) -> None:
        self.catalog = catalog
        self.store = store
        self.publisher = publisher
        self.grace = grace

    def due(self, now: datetime) -> list[Period]:
        """Every period from the first with usage up to the last whose grace has passed, not yet closed."""
        with_usage = [Period.parse(str(item["sk"])) for item in self.store.query(AGGREGATES, "periods")]
        if not with_usage:
            return []
        periods: list[Period] = []
        period = min(with_usage)
        while period.end + self.grace <= now:
            if self.store.get(AGGREGATES, "closed", str(period)) is None:
                periods.append(period)
            period = period.next()
        return periods

    def run(self, now: datetime) -> list[Period]:
        closed = self.due(now)
        for period in closed:
            self.close(period, now)
        return closed

    def close(self, period: Period, now: datetime) -> list[Item]:
        ledger = PeriodLedger(self.catalog, self.store, period)
        ledger.seal(now, final=True)
        ledger.roll_up()
        book = ledger.book()
        adjustments = self.adjustments(period, book)
        with_usage = set(book.tenants(period))
        unbilled = sorted(with_usage - self.catalog.customers.keys())
        invoices: list[Item] = []
        for tenant, customer in sorted(self.catalog.customers.items()):
            plan = self.catalog.plan_in_effect(customer.subscriptions[-1].plan, period)
            if plan is None:
                if tenant in with_usage:
                    unbilled.append(tenant)
                continue
            usage = book.quantities(self.catalog, tenant, period)
            invoice = rate_tenant(self.catalog, customer, plan, period, usage, adjustments.get(tenant, ()))
            invoices.append(self.issue(invoice))
        self.publish(period, invoices)
        self.store.put(
            AGGREGATES,
            {
                "pk": "closed",
                "sk": str(period),
                "unbilled": orjson.dumps(sorted(unbilled)),
                "invoices": len(invoices),
            },
        )
        return invoices

    def issue(self, invoice: Invoice) -> Item:
        item: Item = {
            "pk": key_part(invoice.tenant),
            "sk": str(invoice.period),
            "body": orjson.dumps(invoice.to_json()),
            "published": False,
        }
        return self.store.put_new(INVOICES, item) or item

    def publish(self, period: Period, invoices: list[Item]) -> None:
        pending = [item for item in invoices if item.get("published") is not True]
        for item in pending:
            body = orjson.loads(item["body"])  # type: ignore[arg-type]
            message = {"invoice_id": f"{body['tenant']}|{period}", "period": str(period), **body}
            self.publisher.publish(BILLING_INVOICES.name, str(body["tenant"]).encode(), orjson.dumps(message))
        self.publisher.flush()
        for item in pending:
            self.store.put(INVOICES, {**item, "published": True})

    def adjustments(self, period: Period, book: UsageBook) -> dict[str, tuple[Line, ...]]:
        """Lines for the usage of earlier, closed periods that the book bills in this one."""
        late: dict[Period, set[str]] = {}
        for tenant, usage_period in book.states:
            if usage_period < period:
                late.setdefault(usage_period, set()).add(tenant)
        by_tenant: dict[str, list[Line]] = {}
        for usage_period, tenants in sorted(late.items()):
            # the period's usage billed before this one: in its own ledger and later ones
            before = UsageBook()
            ledger_period = usage_period
            while ledger_period < period:
                ledger = PeriodLedger(self.catalog, self.store, ledger_period)
                before.merge(ledger.book(tenants))
                ledger_period = ledger_period.next()
            after = UsageBook()
            after.merge(before)
            for tenant in tenants:
                after.merge_states((tenant, usage_period), book.states[(tenant, usage_period)])
            for tenant in sorted(tenants):
                customer = self.catalog.customers.get(tenant)
                if customer is not None:
                    by_tenant.setdefault(tenant, []).extend(
                        self.difference(customer, usage_period, before, after)
                    )
        return {tenant: tuple(lines) for tenant, lines in by_tenant.items()}

    def difference(self, customer: Customer, late: Period, before: UsageBook, after: UsageBook) -> list[Line]:
        plan = self.catalog.plan_in_effect(customer.subscriptions[-1].plan, late)
        if plan is None:
            return []
        charges = self.catalog.charges_for(customer, plan)
        tenant = customer.tenant
        old = _by_line(
            usage_lines(self.catalog, charges, plan.currency, before.quantities(self.catalog, tenant, late))
        )
        new = _by_line(
            usage_lines(self.catalog, charges, plan.currency, after.quantities(self.catalog, tenant, late))
        )
        lines = []
        for key, line in new.items():
            previous = old.get(key)
            quantity = line.quantity - (previous.quantity if previous else 0)
            amount = line.amount - (previous.amount if previous else 0)
            if quantity or amount:
                lines.append(Line(line.meter, line.group, quantity, amount, period=late))
        return lines


def _by_line(lines: list[Line]) -> dict[tuple[str, bytes], Line]:
    return {
        (line.meter, orjson.dumps(line.group, option=orjson.OPT_SORT_KEYS, default=str)): line
        for line in lines
    }
