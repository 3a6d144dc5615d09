"""Hand-computed golden cases: late usage of an issued period becomes an amendment of that period,
re-rated with what rated it (commitment, discount, grants), never a line on a later invoice; drafts
count spend to date; numbers have no gap; usage too old to amend is out of the window."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import orjson

from meterline.adapters.memory import MemoryPublisher
from meterline.catalog import parse_catalog
from meterline.periods import Period
from meterline.pipeline.cell import Cell
from meterline.pipeline.close import Closer
from meterline.pipeline.invoices import all_amendments, drafts_of, invoices_by_period
from meterline.pipeline.meter import DeliveredRecord
from meterline.records import Delivery
from meterline.topology import AGGREGATES_TABLE, BILLING_ALERTS, CHARGES_TABLE, OUTCOMES_TABLE, USAGE_EVENTS

from .test_cell import stream_vs_batch

CATALOG_TEXT = """
meters:
  - {key: ingress_gb, event_type: kafka.ingress, aggregation: sum, value: bytes, divide_by: "1000000000"}
  - {key: cku_hours, event_type: kafka.status, aggregation: time_weighted, value: cku}
plans:
  - key: committed
    version: 1
    effective_from: "2026-01-01"
    currency: USD
    charges:
      - {meter: ingress_gb, model: per_unit, unit_price: "1.00"}
      - {meter: cku_hours, model: per_unit, unit_price: "1.00"}
    minimum_commit: "100.00"
  - key: promo
    version: 1
    effective_from: "2026-01-01"
    currency: USD
    charges: [{meter: ingress_gb, model: per_unit, unit_price: "1.00"}]
  - key: promo
    version: 2
    effective_from: "2026-11-01"
    currency: USD
    charges: [{meter: ingress_gb, model: per_unit, unit_price: "1.00"}]
    discount_percent: "50"
  - key: payg
    version: 1
    effective_from: "2026-01-01"
    currency: USD
    charges:
      - {meter: ingress_gb, model: per_unit, unit_price: "1.00"}
      - {meter: cku_hours, model: per_unit, unit_price: "1.00"}
customers:
  - {tenant: org-under, plan: committed}
  - {tenant: org-over, plan: committed}
  - {tenant: org-promo, plan: promo}
  - tenant: org-grant
    plan: payg
    credit_grants: [{id: welcome, amount: "1000.00", effective_from: "2026-10-01", expires: "2027-01-01"}]
  - {tenant: org-v1, plan: payg, credits: "50.00", spend_alerts: ["100"]}
  - tenant: org-expiring
    plan: payg
    credit_grants: [{id: short, amount: "1000.00", effective_from: "2026-10-01", expires: "2026-12-01"}]
billing: {first_period: "2026-10", amend_periods: 2}
"""
CATALOG = parse_catalog(CATALOG_TEXT)
NOV_1 = datetime(2026, 11, 1, 2, tzinfo=UTC)
DEC_1 = datetime(2026, 12, 1, 2, tzinfo=UTC)
JAN_1 = datetime(2027, 1, 1, 2, tzinfo=UTC)


class Events:
    """Usage events with fresh ids, delivered at increasing offsets."""

    def __init__(self) -> None:
        self.count = 0
        self.sent: list[bytes] = []

    def ingress(self, tenant: str, gigabytes: int, time: str) -> bytes:
        return self.event(tenant, "kafka.ingress", {"bytes": gigabytes * 10**9}, time)

    def status(self, tenant: str, cku: int, time: str) -> bytes:
        return self.event(tenant, "kafka.status", {"cku": cku}, time)

    def event(self, tenant: str, event_type: str, data: dict[str, Any], time: str) -> bytes:
        self.count += 1
        document = {"specversion": "1.0", "id": f"g{self.count}", "source": "golden", "type": event_type}
        return orjson.dumps({**document, "subject": tenant, "time": time, "data": data})

    def deliver(self, cell: Cell, *lines: bytes) -> None:
        offset = len(self.sent)
        records = [
            DeliveredRecord(Delivery(USAGE_EVENTS.name, 0, offset + i), None, v) for i, v in enumerate(lines)
        ]
        assert not cell.deliver(records).failed
        self.sent.extend(lines)
        cell.pump()


def amendments_of(cell: Cell, tenant: str) -> list[dict[str, Any]]:
    return [amendment for amendment in all_amendments(cell.store) if amendment["tenant"] == tenant]


def october_then_late(*late: tuple[str, int]) -> tuple[Cell, Events]:
    """Each tenant's October usage, October issued, then late October usage, November issued."""
    cell, events = Cell(CATALOG, MemoryPublisher()), Events()
    events.deliver(
        cell,
        events.ingress("org-under", 30, "2026-10-05T00:00:00Z"),
        events.ingress("org-over", 150, "2026-10-05T00:00:00Z"),
        events.ingress("org-over", 10, "2026-11-05T00:00:00Z"),
        events.ingress("org-promo", 10, "2026-10-05T00:00:00Z"),
        events.ingress("org-grant", 10, "2026-10-05T00:00:00Z"),
        events.ingress("org-v1", 10, "2026-10-05T00:00:00Z"),
    )
    cell.close(NOV_1)
    events.deliver(cell, *(events.ingress(tenant, gb, "2026-10-20T00:00:00Z") for tenant, gb in late))
    cell.close(DEC_1)
    return cell, events


def test_late_usage_under_the_commitment_amends_october_to_no_extra_charge() -> None:
    # GIVEN org-under used 30 GB of its 100.00 commitment in October (true-up 70.00), October issued
    # WHEN 20 GB more of October arrive after that
    cell, events = october_then_late(("org-under", 20))
    # THEN one amendment of October: +20 GB, +20.00, true-up -20.00, total 0.00 (a debit note of 0)
    (amendment,) = amendments_of(cell, "org-under")
    assert amendment["adjusts_period"] == "2026-10" and amendment["revision"] == 1
    assert [(line["quantity_delta"], line["amount_delta"]) for line in amendment["lines"]] == [
        ("20", "20.00")
    ]
    assert (amendment["subtotal_delta"], amendment["commitment_true_up_delta"]) == ("20.00", "-20.00")
    assert (amendment["total_delta"], amendment["kind"]) == ("0.00", "debit_note")
    # AND November's invoice carries nothing of October
    (november,) = [i for i in invoices_by_period(cell.store)["2026-11"] if i["tenant"] == "org-under"]
    assert november["total"] == "100.00"
    assert stream_vs_batch(CATALOG, cell.store, events.sent) == []


def test_late_usage_over_the_commitment_keeps_its_revenue_when_the_next_month_is_under() -> None:
    # GIVEN org-over at 150 GB in October (over its 100.00) and 10 GB in November (under)
    # WHEN 20 GB more of October arrive after October was issued
    cell, events = october_then_late(("org-over", 20))
    # THEN October is amended by +20.00 (before: the lines went on November, its true-up swallowed them)
    (amendment,) = amendments_of(cell, "org-over")
    assert (amendment["total_delta"], amendment["commitment_true_up_delta"]) == ("20.00", "0.00")
    (november,) = [i for i in invoices_by_period(cell.store)["2026-11"] if i["tenant"] == "org-over"]
    assert (november["subtotal"], november["commitment_true_up"], november["total"]) == (
        "10.00",
        "90.00",
        "100.00",
    )
    assert stream_vs_batch(CATALOG, cell.store, events.sent) == []


def test_a_promotion_starting_in_november_does_not_reach_back_to_october() -> None:
    # GIVEN org-promo's plan gives 50% off from November (version 2), 10 GB in October
    # WHEN 10 GB more of October arrive in November
    cell, events = october_then_late(("org-promo", 10))
    # THEN October is amended at version 1's price: +10.00, no discount
    (amendment,) = amendments_of(cell, "org-promo")
    assert (amendment["discount_delta"], amendment["total_delta"]) == ("0.00", "10.00")
    assert stream_vs_batch(CATALOG, cell.store, events.sent) == []


def test_credits_absorb_late_usage_of_their_period() -> None:
    # GIVEN org-grant (a 1,000.00 grant until January) and org-v1 (50.00 of v1 credits each month),
    # each 10 GB in October, all paid by credits
    # WHEN 5 GB more of October arrive for each after October was issued
    cell, events = october_then_late(("org-grant", 5), ("org-v1", 5))
    # THEN each amendment draws 5.00 more from the grant that paid October: nothing more to pay
    for tenant, grant in (("org-grant", "welcome"), ("org-v1", "credits:2026-10")):
        (amendment,) = amendments_of(cell, tenant)
        assert (amendment["subtotal_delta"], amendment["credits_applied_delta"]) == ("5.00", "5.00")
        assert amendment["total_delta"] == "0.00"
        assert amendment["credit_drawdowns"] == [{"grant": grant, "amount": "5.00"}]
    assert stream_vs_batch(CATALOG, cell.store, events.sent) == []


def test_a_grant_that_expired_since_cannot_pay_and_the_amendment_says_so() -> None:
    # GIVEN org-expiring's grant pays October and November, then expires (1 December); October issued
    cell, events = Cell(CATALOG, MemoryPublisher()), Events()
    events.deliver(cell, events.ingress("org-expiring", 10, "2026-10-05T00:00:00Z"))
    cell.close(NOV_1)
    cell.close(DEC_1)
    # WHEN 5 GB of October arrive in December, and December closes
    events.deliver(cell, events.ingress("org-expiring", 5, "2026-10-20T00:00:00Z"))
    cell.close(JAN_1)
    # THEN October's amendment charges the 5.00: the grant expired before it could pay, and it says so
    (amendment,) = amendments_of(cell, "org-expiring")
    assert (amendment["credits_applied_delta"], amendment["total_delta"]) == ("0.00", "5.00")
    assert amendment["expired_grants"] == ["short"]
    assert stream_vs_batch(CATALOG, cell.store, events.sent, "2026-10", "2026-12") == []


def test_no_amendment_when_nothing_changes() -> None:
    # GIVEN org-over's October issued; WHEN a late October event of 0 bytes arrives
    cell, events = Cell(CATALOG, MemoryPublisher()), Events()
    events.deliver(cell, events.ingress("org-over", 150, "2026-10-05T00:00:00Z"))
    cell.close(NOV_1)
    events.deliver(cell, events.ingress("org-over", 0, "2026-10-06T00:00:00Z"))
    cell.close(DEC_1)
    # THEN every delta is 0: no amendment (SPEC §7)
    assert amendments_of(cell, "org-over") == []


def test_usage_older_than_the_window_is_out_of_window_at_the_meter_or_reported_at_close() -> None:
    # GIVEN amendments of the last issued period only, October and November issued
    catalog = parse_catalog(CATALOG_TEXT.replace("amend_periods: 2", "amend_periods: 1"))
    cell, events = Cell(catalog, MemoryPublisher()), Events()
    events.deliver(cell, events.ingress("org-over", 150, "2026-10-05T00:00:00Z"))
    cell.close(NOV_1)
    cell.close(DEC_1)
    # WHEN an October event reaches a meter that read the window before November closed (stale)...
    events.deliver(cell, events.ingress("org-over", 7, "2026-10-07T00:00:00Z"))
    # ...and another reaches a meter that reads it afresh
    cell.meter.window_ttl = 0
    events.deliver(cell, events.ingress("org-over", 9, "2026-10-09T00:00:00Z"))
    cell.close(JAN_1)
    # THEN the second is rejected as out_of_window; the first is reported by December's close; no amendment
    outcomes = [item["reason"] for item in cell.store.scan(OUTCOMES_TABLE.name)]
    assert outcomes == ["out_of_window"]
    closed = cell.store.get(AGGREGATES_TABLE.name, "closed", "2026-12")
    assert closed is not None
    reported = orjson.loads(closed["out_of_window"])  # type: ignore[arg-type]
    assert [(r["tenant"], r["period"], r["quantity"]) for r in reported] == [("org-over", "2026-10", "7")]
    assert amendments_of(cell, "org-over") == []


def test_an_old_event_before_billings_first_period_creates_no_invoices() -> None:
    # GIVEN billing starts in October; WHEN one event of March arrives, and the close runs in December
    cell, events = Cell(CATALOG, MemoryPublisher()), Events()
    events.deliver(cell, events.ingress("org-over", 5, "2026-03-05T00:00:00Z"))
    cell.close(DEC_1)
    # THEN it is out of the window, and only October and November are invoiced
    assert [item["reason"] for item in cell.store.scan(OUTCOMES_TABLE.name)] == ["out_of_window"]
    assert sorted(invoices_by_period(cell.store)) == ["2026-10", "2026-11"]


def test_a_draft_counts_time_weighted_usage_up_to_now_and_alerts_on_that() -> None:
    # GIVEN org-v1 runs 4 CKU from 00:00 on 1 November (alert at 100.00 of spend)
    cell, events = Cell(CATALOG, MemoryPublisher()), Events()
    line = events.status("org-v1", 4, "2026-11-01T00:00:00Z")
    cell.deliver([DeliveredRecord(Delivery(USAGE_EVENTS.name, 0, 0), None, line)])
    # WHEN rate runs at 01:00 that day
    cell.pump(datetime(2026, 11, 1, 1, tzinfo=UTC))
    # THEN the draft bills 4 CKU-hours (one hour held so far), not 2,880 for the whole month: no alert
    (draft,) = drafts_of(cell.store, "org-v1", Period(2026, 11))
    assert draft["state"] == "draft" and draft["number"] is None
    assert [(line["quantity"], line["amount"]) for line in draft["lines"]] == [("4", "4.00")]
    assert not cell.publisher.on(BILLING_ALERTS.name)  # type: ignore[attr-defined]
    running = cell.store.get(CHARGES_TABLE.name, "org-v1", "2026-11|running")
    assert running is not None and running["spend"] == "4.00"


def test_two_closers_at_once_issue_one_invoice_each_and_no_gap() -> None:
    # GIVEN October's usage and two closers on one store
    cell, events = Cell(CATALOG, MemoryPublisher()), Events()
    events.deliver(cell, *(events.ingress(t, 1, "2026-10-05T00:00:00Z") for t in CATALOG.customers))
    closers = [Closer(CATALOG, cell.store, cell.publisher) for _ in range(2)]
    # WHEN both close October at the same time
    threads = [threading.Thread(target=closer.close, args=(Period(2026, 10), NOV_1)) for closer in closers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN one invoice per customer, numbered 1..6 without a gap
    october = invoices_by_period(cell.store)["2026-10"]
    assert len(october) == len(CATALOG.customers)
    assert sorted(invoice["number"] for invoice in october) == [f"{n:06d}" for n in range(1, 7)]


def test_numbers_per_customer_count_each_customers_documents() -> None:
    # GIVEN numbering per customer with a prefix
    catalog = parse_catalog(
        CATALOG_TEXT.replace(
            "amend_periods: 2}", 'amend_periods: 2, numbering: {prefix: "INV-", per: customer}}'
        )
    )
    cell, events = Cell(catalog, MemoryPublisher()), Events()
    events.deliver(cell, events.ingress("org-over", 150, "2026-10-05T00:00:00Z"))
    cell.close(NOV_1)
    events.deliver(cell, events.ingress("org-over", 1, "2026-10-06T00:00:00Z"))
    # WHEN November closes (October amended first, then November invoiced)
    cell.close(DEC_1)
    # THEN org-over's documents are INV-org-over-000001..3; every other customer's start at 1
    numbers = [
        i["number"] for p in invoices_by_period(cell.store).values() for i in p if i["tenant"] == "org-over"
    ]
    numbers += [a["number"] for a in amendments_of(cell, "org-over")]
    assert sorted(numbers) == ["INV-org-over-000001", "INV-org-over-000002", "INV-org-over-000003"]
    (amendment,) = amendments_of(cell, "org-over")
    assert amendment["number"] == "INV-org-over-000002"


def test_late_usage_nobody_bills_is_reported_by_the_close_that_found_it() -> None:
    # GIVEN org-late subscribes from 15 October; October issued
    catalog = parse_catalog(
        CATALOG_TEXT.replace(
            "billing:",
            '  - tenant: org-late\n    subscriptions: [{plan: payg, from: "2026-10-15"}]\nbilling:',
        )
    )
    cell, events = Cell(catalog, MemoryPublisher()), Events()
    events.deliver(cell, events.ingress("org-over", 150, "2026-10-05T00:00:00Z"))
    cell.close(NOV_1)
    # WHEN late October usage arrives of an unknown tenant, and of org-late before its subscription
    events.deliver(
        cell,
        events.ingress("org-unknown", 3, "2026-10-07T00:00:00Z"),
        events.ingress("org-late", 2, "2026-10-08T00:00:00Z"),
    )
    cell.close(DEC_1)
    # THEN November's close reports both as October's unbilled usage, with their reasons
    closed = cell.store.get(AGGREGATES_TABLE.name, "closed", "2026-11")
    assert closed is not None
    late = orjson.loads(closed["late_unbilled"])  # type: ignore[arg-type]
    found = sorted((u["tenant"], u["period"], u["quantity"], u["reason"]) for u in late["usage"])
    assert found == [
        ("org-late", "2026-10", "2", "no_subscription"),
        ("org-unknown", "2026-10", "3", "no_customer"),
    ]
    assert amendments_of(cell, "org-late") == [] and amendments_of(cell, "org-unknown") == []


def test_an_amendment_rates_with_the_catalog_its_period_was_issued_with() -> None:
    # GIVEN October issued under a catalog pricing org-grant's GB at 1.00
    cell, events = Cell(CATALOG, MemoryPublisher()), Events()
    events.deliver(cell, events.ingress("org-grant", 10, "2026-10-05T00:00:00Z"))
    cell.close(NOV_1)
    # WHEN the catalog is redeployed at 3.00 a GB, and late October usage arrives before November closes
    repriced = parse_catalog(
        CATALOG_TEXT.replace(
            'unit_price: "1.00"}\n      - {meter: cku_hours', 'unit_price: "3.00"}\n      - {meter: cku_hours'
        )
    )
    assert repriced.digest != CATALOG.digest
    cell.closer = Closer(repriced, cell.store, cell.publisher)
    events.deliver(cell, events.ingress("org-grant", 5, "2026-10-20T00:00:00Z"))
    cell.close(DEC_1)
    # THEN October's amendment prices the late 5 GB at October's 1.00 (the snapshot stored by digest)
    (amendment,) = amendments_of(cell, "org-grant")
    assert amendment["subtotal_delta"] == "5.00" and amendment["catalog_digest"] == CATALOG.digest
    (november,) = [i for i in invoices_by_period(cell.store)["2026-11"] if i["tenant"] == "org-grant"]
    assert november["catalog_digest"] == repriced.digest


def test_a_catalog_without_plans_closes_only_the_periods_with_usage_and_bills_nothing() -> None:
    # GIVEN no plans at all (no first period to bill from), and usage of October
    catalog = parse_catalog(CATALOG_TEXT.split("plans:")[0] + "plans: []\ncustomers: []\n")
    cell, events = Cell(catalog, MemoryPublisher()), Events()
    events.deliver(cell, events.ingress("org-over", 1, "2026-10-05T00:00:00Z"))
    # WHEN the close runs in December
    closed = cell.closer.run(DEC_1)
    # THEN the close starts at October's usage (not at year 1), with that usage unbilled
    assert closed == [Period(2026, 10), Period(2026, 11)]
    record = cell.store.get(AGGREGATES_TABLE.name, "closed", "2026-10")
    assert record is not None and orjson.loads(record["unbilled"]) == ["org-over"]  # type: ignore[arg-type]
