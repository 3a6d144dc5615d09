"""An adversarial review of the close (issue #12): a customer who would pay less, and a crash at the
worst moment. Hand-computed golden cases on the in-memory cell."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import suppress

import orjson
from pytest import raises

from meterline.adapters.memory import MemoryPublisher
from meterline.bootstrap import Jobs
from meterline.catalog import Catalog, parse_catalog
from meterline.periods import Period
from meterline.pipeline.cell import Cell
from meterline.pipeline.close import Closer
from meterline.pipeline.invoices import all_amendments, invoices_by_period
from meterline.pipeline.processing import AggregateProcessor, MeterProcessor
from meterline.ports import PutNew, Store, StoreError, Write
from meterline.topology import BILLING_INVOICES, OUTCOMES_TABLE

from .test_amendments import CATALOG, CATALOG_TEXT, DEC_1, JAN_1, NOV_1, Events, amendments_of
from .test_cell import stream_vs_batch

SWITCHER = """  - tenant: org-switch
    subscriptions:
      - {plan: payg, from: "2026-10-01", to: "2026-10-16"}
      - {plan: promo, from: "2026-10-16", to: null}
billing:"""
WITH_SWITCHER = CATALOG_TEXT.replace("billing:", SWITCHER)
MORE = """  - key: bulk
    version: 1
    effective_from: "2026-01-01"
    currency: USD
    charges:
      - meter: ingress_gb
        model: volume
        tiers: [{up_to: "10", unit_price: "2.00"}, {up_to: null, unit_price: "1.00"}]
customers:
  - {tenant: org-bulk, plan: bulk}
  - tenant: org-small
    plan: payg
    credit_grants: [{id: small, amount: "50.00", effective_from: "2026-10-01", expires: null}]
"""
REVIEW = parse_catalog(WITH_SWITCHER.replace("customers:\n", MORE))


def redeploy(cell: Cell, catalog: Catalog) -> None:
    """Every job of the cell on another catalog, over the same ledgers (a catalog deploy)."""
    cell.catalog = catalog
    cell.jobs = Jobs(catalog, cell.store, cell.publisher)
    cell.meter, cell.aggregator = cell.jobs.meter, cell.jobs.aggregator
    cell.charges, cell.closer = cell.jobs.charges, cell.jobs.closer
    cell.metering, cell.aggregating = MeterProcessor(cell.meter), AggregateProcessor(cell.aggregator)


def invoice_of(cell: Cell, tenant: str, period: str) -> list[dict[str, str]]:
    return [i for i in invoices_by_period(cell.store).get(period, []) if i["tenant"] == tenant]


def test_late_usage_of_a_customer_removed_from_the_catalog_amends_its_split_month() -> None:
    # GIVEN org-switch on payg 1-15 October and on promo from 16 October: 10 GB on the 5th, 4 GB on
    # the 20th; October issued (payg 10.00, promo 4.00)
    catalog = parse_catalog(WITH_SWITCHER)
    cell, events = Cell(catalog, MemoryPublisher()), Events()
    events.deliver(
        cell,
        events.ingress("org-switch", 10, "2026-10-05T00:00:00Z"),
        events.ingress("org-switch", 4, "2026-10-20T00:00:00Z"),
    )
    cell.close(NOV_1)
    # WHEN the customer is removed from the catalog, and 3 GB of 7 October and 2 GB of 25 October arrive
    redeploy(cell, CATALOG)
    events.deliver(
        cell,
        events.ingress("org-switch", 3, "2026-10-07T00:00:00Z"),
        events.ingress("org-switch", 2, "2026-10-25T00:00:00Z"),
    )
    cell.close(DEC_1)
    # THEN October is amended under the catalog that issued it: payg +3 GB = +3.00, promo +2 GB = +2.00
    found = sorted((a["subscription"], a["total_delta"]) for a in amendments_of(cell, "org-switch"))
    assert found == [("payg@2026-10-01", "3.00"), ("promo@2026-10-16", "2.00")]
    # AND November has no invoice for it: it is no customer any more
    assert invoice_of(cell, "org-switch", "2026-11") == []


def test_late_usage_into_a_cheaper_volume_tier_is_a_credit_note() -> None:
    # GIVEN org-bulk on a volume price (up to 10 GB at 2.00, beyond at 1.00), 8 GB in October: 16.00
    cell, events = Cell(REVIEW, MemoryPublisher()), Events()
    events.deliver(cell, events.ingress("org-bulk", 8, "2026-10-05T00:00:00Z"))
    cell.close(NOV_1)
    # WHEN 4 GB more of October arrive: 12 GB, all at 1.00 = 12.00
    events.deliver(cell, events.ingress("org-bulk", 4, "2026-10-20T00:00:00Z"))
    cell.close(DEC_1)
    # THEN October's amendment gives 4.00 back: a credit note, and the invoice plus it is 12.00
    (amendment,) = amendments_of(cell, "org-bulk")
    assert [(line["quantity_delta"], line["amount_delta"]) for line in amendment["lines"]] == [("4", "-4.00")]
    assert (amendment["subtotal_delta"], amendment["total_delta"]) == ("-4.00", "-4.00")
    assert amendment["kind"] == "credit_note"
    assert stream_vs_batch(REVIEW, cell.store, events.sent) == []


def test_late_usage_for_the_old_part_of_a_split_month_amends_the_old_subscription_only() -> None:
    # GIVEN org-switch on payg 1-15 October, promo from the 16th: 10 GB on the 5th, 4 GB on the 20th
    cell, events = Cell(REVIEW, MemoryPublisher()), Events()
    events.deliver(
        cell,
        events.ingress("org-switch", 10, "2026-10-05T00:00:00Z"),
        events.ingress("org-switch", 4, "2026-10-20T00:00:00Z"),
    )
    cell.close(NOV_1)
    # WHEN 3 GB of 7 October arrive in November
    events.deliver(cell, events.ingress("org-switch", 3, "2026-10-07T00:00:00Z"))
    cell.close(DEC_1)
    # THEN only the payg invoice of October is amended, by +3 GB = +3.00
    (amendment,) = amendments_of(cell, "org-switch")
    assert (amendment["subscription"], amendment["total_delta"]) == ("payg@2026-10-01", "3.00")
    assert stream_vs_batch(REVIEW, cell.store, events.sent) == []


def test_late_usage_of_a_period_whose_grant_a_later_period_drained_is_charged_once() -> None:
    # GIVEN org-small's 50.00 grant: October 10 GB (draws 10.00), November 60 GB (draws the 40.00
    # left, pays 20.00); both issued
    cell, events = Cell(REVIEW, MemoryPublisher()), Events()
    events.deliver(
        cell,
        events.ingress("org-small", 10, "2026-10-05T00:00:00Z"),
        events.ingress("org-small", 60, "2026-11-05T00:00:00Z"),
    )
    cell.close(DEC_1)
    # WHEN 5 GB more of October arrive in December
    events.deliver(cell, events.ingress("org-small", 5, "2026-10-20T00:00:00Z"))
    cell.close(JAN_1)
    # THEN October is amended by +5.00 to pay (the grant has nothing left for it), November unchanged:
    # 20.00 + 5.00 = 25.00 paid over both, as `meterline rate` (October draws 15.00, November 35.00,
    # pays 25.00); the grant drew 50.00 in all, no more
    (amendment,) = amendments_of(cell, "org-small")
    assert amendment["adjusts_period"] == "2026-10"
    assert (amendment["credits_applied_delta"], amendment["total_delta"]) == ("0.00", "5.00")
    assert stream_vs_batch(REVIEW, cell.store, events.sent, "2026-10", "2026-12") == []


def test_late_usage_delivered_twice_is_amended_once() -> None:
    # GIVEN org-over's October issued (150 GB), and 20 GB of October that arrive in November
    cell, events = Cell(CATALOG, MemoryPublisher()), Events()
    events.deliver(cell, events.ingress("org-over", 150, "2026-10-05T00:00:00Z"))
    cell.close(NOV_1)
    late = events.ingress("org-over", 20, "2026-10-20T00:00:00Z")
    events.deliver(cell, late)
    cell.close(DEC_1)
    # WHEN the same event is delivered again in December
    events.deliver(cell, late)
    cell.close(JAN_1)
    # THEN it is a duplicate: October has one amendment of +20.00
    assert [item["outcome"] for item in cell.store.scan(OUTCOMES_TABLE.name)] == ["duplicate"]
    assert [a["total_delta"] for a in amendments_of(cell, "org-over")] == ["20.00"]
    assert stream_vs_batch(CATALOG, cell.store, events.sent, "2026-10", "2026-12") == []


def test_two_closers_racing_over_late_usage_issue_each_amendment_once_without_a_gap() -> None:
    # GIVEN October issued for four customers, then late October usage for each
    cell, events = Cell(CATALOG, MemoryPublisher()), Events()
    tenants = ["org-under", "org-over", "org-promo", "org-grant"]
    events.deliver(cell, *(events.ingress(t, 150, "2026-10-05T00:00:00Z") for t in tenants))
    cell.close(NOV_1)
    events.deliver(cell, *(events.ingress(t, 5, "2026-10-20T00:00:00Z") for t in tenants))
    # WHEN two closers close November at once
    closers = [Closer(CATALOG, cell.store, cell.publisher) for _ in range(2)]
    threads = [threading.Thread(target=closer.close, args=(Period(2026, 11), DEC_1)) for closer in closers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN one amendment per tenant, and the six October invoices, four amendments and six November
    # invoices are numbered 1..16
    assert sorted(a["tenant"] for a in all_amendments(cell.store)) == sorted(tenants)
    invoices = [i for p in invoices_by_period(cell.store).values() for i in p]
    documents = [*all_amendments(cell.store), *invoices]
    assert sorted(int(d["number"]) for d in documents) == list(range(1, 17))
    assert stream_vs_batch(CATALOG, cell.store, events.sent) == []


class FailingOnce(MemoryPublisher):
    """A publisher whose first publish fails, as a closer crashing just after it issued."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def publish(self, topic: str, key: bytes, value: bytes, headers: object = None) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("injected: the close crashed after issuing")
        super().publish(topic, key, value)


def test_an_amendment_issued_by_a_close_that_crashed_before_publishing_is_published_by_the_rerun() -> None:
    # GIVEN October issued, then 20 GB of late October usage for org-over
    cell, events = Cell(CATALOG, MemoryPublisher()), Events()
    events.deliver(cell, events.ingress("org-over", 150, "2026-10-05T00:00:00Z"))
    cell.close(NOV_1)
    events.deliver(cell, events.ingress("org-over", 20, "2026-10-20T00:00:00Z"))
    # WHEN November's close issues the amendment and crashes before it publishes anything, then runs again
    publisher = FailingOnce()
    crashed = Closer(CATALOG, cell.store, publisher)
    with suppress(ConnectionError):
        crashed.run(DEC_1)
    assert publisher.failed and not publisher.messages
    Closer(CATALOG, cell.store, publisher).run(DEC_1)
    # THEN the amendment is published too, with November's invoices
    published = [orjson.loads(m.value) for m in publisher.on(BILLING_INVOICES.name)]
    assert [m["amendment_id"] for m in published if "amendment_id" in m] == [
        "org-over|2026-10|committed@2026-01-01|1"
    ]
    assert sum(1 for m in published if "amendment_id" not in m) == len(CATALOG.customers)


def test_an_amendment_rates_with_its_invoices_catalog_though_a_rerun_of_the_close_used_another() -> None:
    # GIVEN October's close issues org-grant's invoice (10 GB at 1.00 = 10.00) and crashes before publishing
    cell, events = Cell(CATALOG, MemoryPublisher()), Events()
    events.deliver(cell, events.ingress("org-grant", 10, "2026-10-05T00:00:00Z"))
    with suppress(ConnectionError):
        Closer(CATALOG, cell.store, FailingOnce()).run(NOV_1)
    # AND a catalog at 3.00 a GB is deployed before the close runs again and finishes October
    repriced = parse_catalog(
        CATALOG_TEXT.replace(
            'unit_price: "1.00"}\n      - {meter: cku_hours', 'unit_price: "3.00"}\n      - {meter: cku_hours'
        )
    )
    redeploy(cell, repriced)
    cell.close(NOV_1)
    (october,) = invoice_of(cell, "org-grant", "2026-10")
    assert (october["subtotal"], october["catalog_digest"]) == ("10.00", CATALOG.digest)
    # WHEN 5 GB of October arrive late
    events.deliver(cell, events.ingress("org-grant", 5, "2026-10-20T00:00:00Z"))
    cell.close(DEC_1)
    # THEN the amendment prices them as the invoice did: +5 GB at 1.00 = +5.00 (not 15 GB at 3.00 less
    # the 10.00 issued, +35.00: a re-pricing of usage already billed)
    (amendment,) = amendments_of(cell, "org-grant")
    assert (amendment["subtotal_delta"], amendment["catalog_digest"]) == ("5.00", CATALOG.digest)


def test_a_catalog_that_changes_the_numbering_scope_is_refused_by_the_close() -> None:
    # GIVEN October issued, numbered per issuer; org-grant's 1,000.00 grant paid its 10.00
    cell, events = Cell(CATALOG, MemoryPublisher()), Events()
    events.deliver(cell, events.ingress("org-grant", 10, "2026-10-05T00:00:00Z"))
    cell.close(NOV_1)
    # WHEN a catalog numbering per customer is deployed, and November (10 GB more) is closed
    per_customer = parse_catalog(
        CATALOG_TEXT.replace("amend_periods: 2}", "amend_periods: 2, numbering: {per: customer}}")
    )
    redeploy(cell, per_customer)
    events.deliver(cell, events.ingress("org-grant", 10, "2026-11-05T00:00:00Z"))
    # THEN the close refuses, naming both scopes (the issued documents and their draws live in the
    # issuer's sequence: under another, the grant would pay October's 10.00 again and numbers restart)
    with raises(StoreError, match=r"numbering per issuer.*per customer"):
        cell.close(DEC_1)
    assert sorted(invoices_by_period(cell.store)) == ["2026-10"]


class CrashingAfter:
    """A store that takes the first transaction writing an item whose key starts with ``sk``, then
    the closer dies."""

    def __init__(self, inner: Store, sk: str) -> None:
        self.inner = inner
        self.sk = sk
        self.crashed = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def transact(self, writes: Sequence[Write]) -> None:
        self.inner.transact(writes)
        written = [str(write.item["sk"]) for write in writes if isinstance(write, PutNew)]
        if not self.crashed and any(sk.startswith(self.sk) for sk in written):
            self.crashed = True
            raise ConnectionError("injected: crash after a transaction")


def test_a_crash_between_two_amendments_drawing_one_grant_leaves_the_same_documents_when_rerun() -> None:
    # GIVEN org-small's 50.00 grant: October 10 GB (draws 10.00), November 60 GB (draws 40.00, pays
    # 20.00), both issued; then 5 GB more of each arrive in December
    cell, events = Cell(REVIEW, MemoryPublisher()), Events()
    events.deliver(
        cell,
        events.ingress("org-small", 10, "2026-10-05T00:00:00Z"),
        events.ingress("org-small", 60, "2026-11-05T00:00:00Z"),
    )
    cell.close(DEC_1)
    events.deliver(
        cell,
        events.ingress("org-small", 5, "2026-10-20T00:00:00Z"),
        events.ingress("org-small", 5, "2026-11-20T00:00:00Z"),
    )
    cell.pump()
    # WHEN December's close dies right after issuing October's amendment, and runs again
    crashing = CrashingAfter(cell.store, "amendment|org-small|2026-10|")
    with suppress(ConnectionError):
        Closer(REVIEW, crashing, cell.publisher).run(JAN_1)  # type: ignore[arg-type]
    assert crashing.crashed and len(amendments_of(cell, "org-small")) == 1
    cell.close(JAN_1)
    # THEN October pays 5.00 more (the grant has 10.00 left for it, October now owes 15.00) and
    # November 5.00 more (65.00 owed, 40.00 drawn): 30.00 in all, as `meterline rate` (October draws
    # 15.00, November 35.00 and pays 30.00); numbers without a gap
    found = [
        (a["adjusts_period"], a["credits_applied_delta"], a["total_delta"])
        for a in amendments_of(cell, "org-small")
    ]
    assert sorted(found) == [("2026-10", "0.00", "5.00"), ("2026-11", "0.00", "5.00")]
    documents = [
        *all_amendments(cell.store),
        *(i for p in invoices_by_period(cell.store).values() for i in p),
    ]
    assert sorted(int(d["number"]) for d in documents) == list(range(1, len(documents) + 1))
    assert stream_vs_batch(REVIEW, cell.store, events.sent, "2026-10", "2026-12") == []
