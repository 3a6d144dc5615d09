"""Rate: each tenant's running charges for the open period, and spend alerts announced once.

Triggered by new partial states. For every tenant in them it re-rates the period from all of
the period's partials with the same rating code as the invoice, stores the running figures, and
for each catalog threshold the spend has reached creates an alert record (conditional: one per
threshold) and publishes it until the record says it was published. A crash between publishing
and marking can publish an alert twice; it carries a stable ``alert_id`` for consumers to drop
the repeat.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from meterline.catalog import Catalog
from meterline.periods import Period
from meterline.ports import Item, Publisher, Store
from meterline.rating import Usage, rate_tenant
from meterline.records import key_part, unpack_book
from meterline.topology import BILLING_ALERTS, CHARGES_TABLE

from .ledger_reads import billed_in, merge, partials

TABLE = CHARGES_TABLE.name


class RunningCharges:
    def __init__(self, catalog: Catalog, store: Store, publisher: Publisher) -> None:
        self.catalog = catalog
        self.store = store
        self.publisher = publisher

    def run(self, new_partials: Iterable[Item]) -> int:
        """Re-rate the tenants of the new partials; return how many alerts were published."""
        touched: dict[tuple[Period, int], set[str]] = {}
        for item in new_partials:
            _, period_text, bucket_text = str(item["pk"]).split("|")
            period, bucket = Period.parse(period_text), int(bucket_text)
            if billed_in(item) != period:
                continue  # late usage: billed as an adjustment when its billing period closes
            book = unpack_book(self.catalog, bytes(item["book"]))  # type: ignore[arg-type]
            touched.setdefault((period, bucket), set()).update(tenant for tenant, _ in book.states)
        published = 0
        for (period, bucket), tenants in sorted(touched.items()):
            items = [
                i for i in partials(self.store, period, range(bucket, bucket + 1)) if billed_in(i) == period
            ]
            book = merge(self.catalog, items)
            for tenant in sorted(tenants):
                published += self.rate(
                    tenant, period, book.quantities(self.catalog, tenant, period), len(items)
                )
        return published

    def rate(self, tenant: str, period: Period, usage: Usage, partial_count: int) -> int:
        customer = self.catalog.customers.get(tenant)
        if customer is None:
            return 0
        plan = self.catalog.plan_in_effect(customer.plan, period)
        if plan is None:
            return 0
        invoice = rate_tenant(self.catalog, customer, plan, period, usage)
        spend = invoice.subtotal - invoice.discount
        pk = key_part(tenant)
        self.store.put(
            TABLE,
            {
                "pk": pk,
                "sk": f"{period}|running",
                "currency": invoice.currency,
                "subtotal": str(invoice.subtotal),
                "spend": str(spend),
                "partials": partial_count,
            },
        )
        published = 0
        for threshold in customer.spend_alerts:
            if spend < threshold:
                break
            sk = f"{period}|alert|{threshold}"
            alert: Item = {"pk": pk, "sk": sk, "published": False, "spend": str(spend)}
            stored = self.store.put_new(TABLE, alert) or alert
            if stored.get("published") is True:
                continue
            body = {
                "alert_id": f"{tenant}|{period}|{threshold}",
                "tenant": tenant,
                "period": str(period),
                "threshold": str(threshold),
                "spend": str(stored["spend"]),
                "currency": invoice.currency,
            }
            self.publisher.publish(BILLING_ALERTS.name, tenant.encode(), orjson.dumps(body))
            self.publisher.flush()
            self.store.put(TABLE, {**stored, "published": True})
            published += 1
        return published
