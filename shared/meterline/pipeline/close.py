"""Close: a period, once past its grace window, becomes one immutable invoice per customer and
subscription active in it, billed by the same core as `meterline rate` (``billing.bill_period``).

1. The period's open window is sealed for good first: from then on the aggregator bills any
   usage of the period in a later one (its transaction checks the fence), so the rollup made
   next holds all the period will ever have.
2. What the period carries in: the time-weighted values in force at its start, which the
   previous period's close stored with its ledger (recomputed for tenants whose late usage of an
   earlier period arrived since), and each customer's credit-grant balances, as left by the
   invoices already issued.
3. Each invoice is written with a conditional create: running the close twice, or two closers at
   once, leaves one invoice per tenant, subscription and period; a loser reads back the winner's.
4. Usage that arrived after its own period closed is billed here as adjustment lines: that
   period re-rated with and without it, line by line, the difference named with its period and
   subscription.
5. Invoices are published to ``billing.invoices`` until their record says published (a crash in
   between can publish one twice, with the same ``invoice_id``); then the values in force at the
   period's end are stored for the next close, and the period is marked closed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from meterline.billing import bill_period, currency_of
from meterline.catalog import Catalog
from meterline.credits import Credits
from meterline.invoice import Invoice
from meterline.periods import Period
from meterline.ports import Item, Publisher, Store
from meterline.records import key_part
from meterline.topology import AGGREGATES_TABLE, BILLING_INVOICES, INVOICES_TABLE

from .late import Late
from .ledger import PeriodLedger, is_closed, periods_with_usage, record_closed

AGGREGATES = AGGREGATES_TABLE.name
INVOICES = INVOICES_TABLE.name


def invoice_sk(period: Period, subscription: str) -> str:
    return f"{period}|{key_part(subscription)}"


def invoices_by_period(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every stored invoice's body by period, by tenant then subscription start as `meterline rate`
    lists them."""
    found: dict[str, list[dict[str, Any]]] = {}
    for item in store.scan(INVOICES_TABLE.name):
        found.setdefault(str(item["period"]), []).append(orjson.loads(item["body"]))  # type: ignore[arg-type]
    for invoices in found.values():
        invoices.sort(key=lambda invoice: (str(invoice["tenant"]), _starts(str(invoice["subscription"]))))
    return found


def _starts(subscription: str) -> str:
    """A subscription key's start date (``plan@YYYY-MM-DD``), which orders a tenant's subscriptions."""
    return subscription.rsplit("@", 1)[-1]


class Closer:
    def __init__(self, catalog: Catalog, store: Store, publisher: Publisher, grace: timedelta) -> None:
        self.catalog = catalog
        self.store = store
        self.publisher = publisher
        self.grace = grace

    def due(self, now: datetime) -> list[Period]:
        """Every period from the first with usage (not before billing's first period) up to the
        last whose grace has passed, not yet closed."""
        with_usage = periods_with_usage(self.store)
        if not with_usage:
            return []
        periods: list[Period] = []
        period = max(min(with_usage), self.catalog.first_period)
        while period.end + self.grace <= now:
            if not is_closed(self.store, period):
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
        late = Late(self.catalog, self.store, period, book)
        bill = bill_period(
            self.catalog, book, period, late.openings(), self.credits(period), adjustments=late.adjustments()
        )
        invoices = [self.issue(invoice) for invoice in bill.invoices]
        self.publish(period, invoices)
        ledger.write_closing(bill.closing)
        record_closed(self.store, period, list(bill.unbilled_tenants), len(invoices))
        return invoices

    def credits(self, period: Period) -> dict[str, Credits]:
        """Each customer's credit balances before ``period``: grants less what issued invoices drew."""
        found: dict[str, Credits] = {}
        for tenant, customer in self.catalog.customers.items():
            drawn: dict[str, Decimal] = {}
            if customer.credit_grants:
                for item in self.store.query(INVOICES, key_part(tenant)):
                    if Period.parse(str(item["period"])) < period:
                        body = orjson.loads(item["body"])  # type: ignore[arg-type]
                        for drawdown in body.get("credit_drawdowns", []):
                            amount = Decimal(drawdown["amount"])
                            drawn[drawdown["grant"]] = drawn.get(drawdown["grant"], Decimal(0)) + amount
            elif customer.credits is None:
                continue
            found[tenant] = Credits(customer, currency_of(self.catalog, customer), drawn)
        return found

    def issue(self, invoice: Invoice) -> Item:
        item: Item = {
            "pk": key_part(invoice.tenant),
            "sk": invoice_sk(invoice.period, invoice.subscription),
            "period": str(invoice.period),
            "body": orjson.dumps(invoice.to_json()),
            "published": False,
        }
        return self.store.put_new(INVOICES, item) or item

    def publish(self, period: Period, invoices: list[Item]) -> None:
        pending = [item for item in invoices if item.get("published") is not True]
        for item in pending:
            body = orjson.loads(item["body"])  # type: ignore[arg-type]
            invoice_id = f"{body['tenant']}|{period}|{body['subscription']}"
            message = {"invoice_id": invoice_id, "period": str(period), **body}
            self.publisher.publish(BILLING_INVOICES.name, str(body["tenant"]).encode(), orjson.dumps(message))
        self.publisher.flush()
        for item in pending:
            self.store.put(INVOICES, {**item, "published": True})
