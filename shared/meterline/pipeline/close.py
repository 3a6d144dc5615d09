"""Close: a period, once it may be issued (``may_issue``), becomes one immutable, numbered invoice
per customer and subscription active in it, billed by the same core as `meterline rate`
(``billing.bill_period``); late usage of the periods issued before it becomes amendments.

Every period from ``billing.first_period`` on is closed, with usage or not (flat fees,
commitments); usage before it is out of the window, never billed.

1. The period's open window is sealed for good first: from then on the aggregator bills any
   usage of the period in a later one (its transaction checks the fence), so the rollup made
   next holds all the period will ever have.
2. Late usage: what the ledger holds of earlier, issued periods. For each such period P still
   within ``billing.amend_periods`` (``amendable_from``), P is re-rated in full for the tenant,
   with P's recorded catalog (a snapshot by digest), its openings and the credit P may still
   draw, and the difference from what was issued for P is issued as an amendment (none when
   nothing changed). Late usage of an older period is reported as out of the window, and late
   usage no subscription of P covers as unbilled, in the close's record. Amendments are issued
   before the period's invoices, so P draws on its grants before the later period does, as
   `meterline rate` draws them.
3. What the period carries in: the time-weighted values in force at its start, which the
   previous period's close stored with its ledger (recomputed for tenants whose late usage of an
   earlier period arrived since), and each customer's credit-grant balances, as left by every
   invoice and amendment already issued.
4. Each invoice and amendment is issued with the next number of its sequence in one transaction
   (``invoices.InvoiceLedger``): running the close twice, or two closers at once, or a crash
   between any two writes leaves one document per key and no gap in the numbers.
5. Documents are published to ``billing.invoices`` (amendments first) until their record says
   published (a crash in between can publish one twice, with the same id); then the values in
   force at the period's end are stored for the next close, the period is marked closed, and the
   amendment window moves on.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson

from meterline.amendments import add_drawdowns, amendment
from meterline.billing import PeriodBill, bill_period, bill_tenant, currency_of
from meterline.catalog import Catalog
from meterline.credits import Credits
from meterline.money import Money
from meterline.periods import Period
from meterline.ports import Item, Publisher, Store, StoreError
from meterline.topology import BILLING_INVOICES

from .invoices import (
    InvoiceLedger,
    body_of,
    invoices_by_period,
    published_message,
    set_amend_window,
)
from .late import Late
from .ledger import PeriodLedger, closed_periods, closed_record, periods_with_usage, record_closed

__all__ = ["Closer", "amendable_from", "invoices_by_period", "may_issue"]


def may_issue(period: Period, grace: timedelta, now: datetime) -> bool:
    """Whether ``period``'s invoices may be issued at ``now``: once its end plus the grace has
    passed. (A billing home adds: once every cell reported the period final, or at end + grace +
    ``billing.cell_wait``.)"""
    return period.end + grace <= now


def amendable_from(catalog: Catalog, issued: Period | None) -> Period:
    """The first period late usage may still amend (or, not issued yet, bill) once ``issued`` is
    the latest issued period: ``billing.amend_periods`` issued periods back, never before billing's
    first period. Usage of an earlier period is ``out_of_window``."""
    first = catalog.first_period
    if issued is None:
        return first
    window = issued.next()
    for _ in range(catalog.billing.amend_periods):
        window = window.previous()
    return max(first, window)


class Closer:
    def __init__(
        self, catalog: Catalog, store: Store, publisher: Publisher, grace: timedelta | None = None
    ) -> None:
        """``grace``: the catalog's ``billing.grace`` unless given."""
        self.catalog = catalog
        self.store = store
        self.publisher = publisher
        self.grace = catalog.billing.grace if grace is None else grace
        self.invoices = InvoiceLedger(store, catalog.billing.numbering)
        self._catalogs: dict[str, Catalog] = {catalog.digest: catalog}

    def due(self, now: datetime) -> list[Period]:
        """Every period from billing's first that may be issued now and is not closed yet."""
        closed = set(closed_periods(self.store))
        periods: list[Period] = []
        period = self.catalog.first_period
        if not self.catalog.plans:  # nothing is ever invoiced: close the periods with usage, to report it
            with_usage = periods_with_usage(self.store)
            if not with_usage:
                return []
            period = min(with_usage)
        while may_issue(period, self.grace, now):
            if period not in closed:
                periods.append(period)
            period = period.next()
        return periods

    def run(self, now: datetime) -> list[Period]:
        closed = self.due(now)
        for period in closed:
            self.close(period, now)
        return closed

    def close(self, period: Period, now: datetime) -> list[Item]:
        """Issue ``period``: amendments for the late usage its ledger holds, then its invoices."""
        self.invoices.hold_scope()
        ledger = PeriodLedger(self.catalog, self.store, period)
        ledger.seal(now, final=True)
        ledger.roll_up()
        book = ledger.book()
        self.invoices.save_catalog(self.catalog)
        window = amendable_from(self.catalog, period.previous())
        late = Late(self.catalog, self.store, period, book, since=window)
        record = CloseRecord(period)
        amendments = [
            item
            for tenant, since in late.earliest().items()
            for item in self.amend_since(late, since, tenant, record)
        ]
        late.store_closings()
        record.out_of_window = late.out_of_window()
        bill = bill_period(self.catalog, book, period, late.openings(), self.credits(period))
        record.add_unbilled(bill)
        invoices = [self.invoices.issue_invoice(invoice) for invoice in bill.invoices]
        self.publish([*amendments, *invoices])
        ledger.write_closing(bill.closing)
        reported = record.to_item(self.catalog.digest, len(amendments))
        record_closed(self.store, period, record.unbilled_tenants, len(invoices), reported)
        set_amend_window(self.store, amendable_from(self.catalog, period))
        return invoices

    def amend_since(self, late: Late, since: Period, tenant: str, record: CloseRecord) -> list[Item]:
        """Amend each issued period of the tenant from its earliest late one: a late period's own
        figures change, and so may a later one's (a late time-weighted sample changes what it
        opened with; credit a late period gives back, or takes, changes what a later one draws)."""
        issued = []
        period = since
        while period < late.period:
            issued += self.amend(late, period, tenant, record)
            period = period.next()
        return issued

    def amend(self, late: Late, period: Period, tenant: str, record: CloseRecord) -> list[Item]:
        """Re-rate the tenant's issued ``period`` with everything now known of it, under what rated
        it, and issue what changed as amendments (one per subscription whose figures moved)."""
        catalog = self.catalog_of(tenant, period)
        customer = catalog.customers.get(tenant)
        credits: Credits | None = None
        expired: list[str] = []
        if customer is not None and (customer.credit_grants or customer.credits is not None):
            for_period, elsewhere = self.drawn_split(tenant, period)
            currency = currency_of(catalog, customer)
            credits, expired = Credits.reopened(
                customer, currency, period, late.period, for_period, elsewhere
            )
        bill = PeriodBill(period)
        bill_tenant(
            catalog, bill, tenant, late.everything(tenant, period), late.opening(tenant, period), credits
        )
        record.late_unbilled.extend(usage.to_json() for usage in bill.unbilled)
        record.late_unbilled_tenants.append([tenant, str(period)])
        issued = []
        for invoice in bill.invoices:
            stored, amended, so_far = self.invoices.issued(tenant, period, invoice.subscription)
            if stored is None:
                raise StoreError(
                    f"{tenant} {period} {invoice.subscription}: amending an invoice never issued"
                )
            # a close that crashed after issuing them has not published them: this run does
            issued += [item for item in amended if item.get("published") is not True]
            change = amendment(invoice, so_far, expired)
            if change is not None:
                issued.append(self.invoices.issue_amendment(change))
        return issued

    def drawn_split(self, tenant: str, period: Period) -> tuple[dict[str, Money], dict[str, Money]]:
        """What the tenant's documents drew from each grant: for ``period``, and for the others."""
        for_period: dict[str, Money] = {}
        elsewhere: dict[str, Money] = {}
        for item in [*self.invoices.invoices_of(tenant), *self.invoices.amendments_of(tenant)]:
            add_drawdowns(for_period if item["period"] == str(period) else elsewhere, body_of(item))
        return for_period, elsewhere

    def catalog_of(self, tenant: str, period: Period) -> Catalog:
        """The catalog that rated the tenant's invoices of ``period`` (their snapshot, by the digest
        they record): a close that crashed after issuing them and ran again after a deploy records
        the new catalog, but they stand as the old one rated them. Without an invoice of the period
        (or with invoices of two catalogs), the catalog the period's close recorded."""
        digests = {str(body_of(item)["catalog_digest"]) for item in self.invoices.invoices_of(tenant, period)}
        closed = closed_record(self.store, period)
        digest = str(closed["catalog_digest"]) if closed is not None and "catalog_digest" in closed else None
        if len(digests) == 1:
            digest = digests.pop()
        if digest is None:
            return self.catalog
        if digest not in self._catalogs:
            self._catalogs[digest] = self.invoices.load_catalog(digest)
        return self._catalogs[digest]

    def credits(self, period: Period) -> dict[str, Credits]:
        """Each customer's credit balances before ``period``: grants less what issued documents drew."""
        found: dict[str, Credits] = {}
        for tenant, customer in self.catalog.customers.items():
            if not customer.credit_grants and customer.credits is None:
                continue
            drawn = self.invoices.drawn(tenant, before=period) if customer.credit_grants else {}
            found[tenant] = Credits(customer, currency_of(self.catalog, customer), drawn)
        return found

    def publish(self, items: list[Item]) -> None:
        """Amendments and invoices go to ``billing.invoices``, told apart by ``amendment_id`` (so
        their consumers read one sequence in number order)."""
        pending = [item for item in items if item.get("published") is not True]
        for item in pending:
            message = published_message(item)
            self.publisher.publish(
                BILLING_INVOICES.name, str(message["tenant"]).encode(), orjson.dumps(message)
            )
        self.publisher.flush()
        for item in pending:
            self.invoices.mark_published(item)


class CloseRecord:
    """What a close reports besides its documents: usage no invoice bills, and why."""

    def __init__(self, period: Period) -> None:
        self.period = period
        self.unbilled: list[dict[str, Any]] = []
        self.unbilled_tenants: list[str] = []
        self.late_unbilled: list[dict[str, Any]] = []
        """Unbilled usage of earlier periods, re-rated whole for each (tenant, period) in
        ``late_unbilled_tenants``: it replaces what earlier closes reported for them."""
        self.late_unbilled_tenants: list[list[str]] = []
        self.out_of_window: list[dict[str, Any]] = []

    def add_unbilled(self, bill: PeriodBill) -> None:
        self.unbilled = [usage.to_json() for usage in bill.unbilled]
        self.unbilled_tenants = bill.unbilled_tenants

    def to_item(self, digest: str, amendments: int) -> Item:
        """What the close record keeps besides its unbilled tenants and invoice count."""
        return {
            "catalog_digest": digest,
            "unbilled_usage": orjson.dumps(self.unbilled),
            "late_unbilled": orjson.dumps(
                {"tenants": self.late_unbilled_tenants, "usage": self.late_unbilled}
            ),
            "out_of_window": orjson.dumps(self.out_of_window),
            "amendments": amendments,
        }
