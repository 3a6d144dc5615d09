"""The whole billing cell on in-memory fakes: meter, aggregate, rate and close agree with
`meterline rate` on the same events, through duplicates, conflicts, redeliveries and late usage."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from meterline.adapters.memory import MemoryPublisher
from meterline.catalog import Catalog, parse_catalog
from meterline.offline import CELL, rate_cells
from meterline.periods import Period
from meterline.pipeline.cell import Cell
from meterline.pipeline.invoices import all_amendments, invoices_by_period
from meterline.pipeline.meter import DeliveredRecord
from meterline.ports import Store
from meterline.reconcile import reconcile
from meterline.records import Delivery
from meterline.topology import BILLING_ALERTS, BILLING_INVOICES, USAGE_EVENTS, USAGE_REJECTED

CATALOG_TEXT = """
meters:
  - {key: ingress_gb, event_type: kafka.ingress, aggregation: sum, value: bytes,
     divide_by: "1000000000", group_by: [cluster]}
  - {key: cku_hours, event_type: kafka.status, aggregation: time_weighted, value: cku}
  - {key: peak_partitions, event_type: kafka.status, aggregation: max, value: partitions}
  - {key: schemas, event_type: schema.use, aggregation: unique_count, value: schema}
plans:
  - key: standard
    version: 1
    effective_from: "2026-01-01"
    currency: USD
    charges:
      - meter: ingress_gb
        model: graduated
        tiers: [{up_to: "50", unit_price: "0.11"}, {up_to: null, unit_price: "0.05"}]
      - {meter: cku_hours, model: per_unit, unit_price: "1.75"}
      - {meter: peak_partitions, model: package, package_size: "100", package_price: "1.50"}
      - meter: schemas
        model: volume
        tiers: [{up_to: "10", unit_price: "0"}, {up_to: null, unit_price: "0.20"}]
      - {key: support, model: flat, amount: "49.00"}
    discount_percent: "5"
    minimum_commit: "150.00"
customers:
  - {tenant: org-1, plan: standard, credits: "20.00", spend_alerts: ["50", "100"]}
  - {tenant: org-2, plan: standard}
  - {tenant: org-3, plan: standard}
billing: {first_period: "2026-10"}
"""
CATALOG = parse_catalog(CATALOG_TEXT)


def make_events(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    lines: list[bytes] = []
    start = datetime(2026, 10, 1, tzinfo=UTC)
    for number in range(count):
        tenant = rng.choice(["org-1", "org-2", "org-3", "org-9"])
        time = start + timedelta(seconds=rng.randrange(61 * 86400))
        kind = rng.random()
        if kind < 0.6:
            event_type, data = (
                "kafka.ingress",
                {"bytes": rng.randrange(10**9), "cluster": rng.choice(["a", "b"])},
            )
        elif kind < 0.8:
            event_type, data = (
                "kafka.status",
                {"cku": str(rng.choice([1, 2, 4])), "partitions": rng.randrange(500)},
            )
        else:
            event_type, data = "schema.use", {"schema": f"s-{rng.randrange(15)}"}
        event = {
            "specversion": "1.0",
            "id": f"e{number}",
            "source": "cell/test",
            "type": event_type,
            "subject": tenant,
            "time": time.isoformat().replace("+00:00", "Z"),
            "data": data,
        }
        lines.append(orjson.dumps(event))
        roll = rng.random()
        if roll < 0.05:
            lines.append(lines[-1])  # duplicate
        elif roll < 0.08:
            lines.append(orjson.dumps({**event, "data": {**data, "bytes": 7}}))  # conflict
        elif roll < 0.10:
            lines.append(b'{"specversion": "1.0", "id": ')  # malformed
    return lines


def deliver(cell: Cell, lines: list[bytes], first_offset: int, batch: int = 97) -> int:
    received = 0
    for start in range(0, len(lines), batch):
        records = [
            DeliveredRecord(Delivery(USAGE_EVENTS.name, 0, first_offset + start + i), None, value)
            for i, value in enumerate(lines[start : start + batch])
        ]
        report = cell.deliver(records)
        assert not report.failed
        received += len(records)
        cell.pump()
    return received


def pipeline_invoices(cell: Cell) -> dict[str, list[dict[str, Any]]]:
    return invoices_by_period(cell.store)


def stream_vs_batch(
    catalog: Catalog, store: Store, events: list[bytes], first: str = "2026-10", last: str = "2026-11"
) -> list[str]:
    """SPEC §7's invariant, every field, every tenant: the store's invoices and amendments against
    `meterline rate --from first --to last` on the same events."""
    expected = rate_cells(catalog, {CELL: events}, Period.parse(first), Period.parse(last))
    documents = [result.to_json() for result in expected]
    return reconcile(documents, invoices_by_period(store), all_amendments(store))


def test_closed_invoices_equal_offline_rating_with_late_usage_as_adjustments() -> None:
    # GIVEN two months of usage with duplicates, conflicts and malformed lines, delivered in batches,
    # October closed in the middle of November, and a tail of October usage arriving after that
    publisher = MemoryPublisher()
    cell = Cell(CATALOG, publisher)
    lines = make_events(seed=7, count=3000)
    late = [line for line in make_events(seed=8, count=200) if b'"time":"2026-10' in line]
    deliver(cell, lines, first_offset=0)
    cell.close(datetime(2026, 11, 15, tzinfo=UTC))
    deliver(cell, late, first_offset=len(lines))
    # WHEN November closes too
    cell.close(datetime(2026, 12, 2, tzinfo=UTC))
    # THEN every figure of `meterline rate` is billed, to the cent, by an invoice and its amendments
    assert stream_vs_batch(CATALOG, cell.store, lines + late) == []
    invoices = pipeline_invoices(cell)
    amendments = all_amendments(cell.store)
    assert {a["adjusts_period"] for a in amendments} == {"2026-10"}, "late October usage amends October"
    assert all(not line.get("adjusts_period") for i in invoices["2026-11"] for line in i["lines"])
    # AND each invoice and amendment was published once, rejects dead-lettered, alerts announced once
    published = len(publisher.on(BILLING_INVOICES.name))
    assert published == sum(len(v) for v in invoices.values()) + len(amendments)
    assert publisher.on(USAGE_REJECTED.name)
    alerts = [orjson.loads(m.value)["alert_id"] for m in publisher.on(BILLING_ALERTS.name)]
    assert len(alerts) == len(set(alerts)) > 0


def test_redelivered_batches_change_nothing() -> None:
    # GIVEN a cell that metered and aggregated a month
    once = Cell(CATALOG, MemoryPublisher())
    twice = Cell(CATALOG, MemoryPublisher())
    lines = make_events(seed=3, count=1500)
    deliver(once, lines, 0)
    # WHEN the other cell gets every batch twice (Kafka redelivery after a lost acknowledgement)
    deliver(twice, lines, 0)
    deliver(twice, lines, 0, batch=50)
    # THEN the closed invoices are identical
    for cell in (once, twice):
        cell.close(datetime(2027, 1, 1, tzinfo=UTC))
    assert pipeline_invoices(once) == pipeline_invoices(twice)


@pytest.mark.parametrize("runs", [2])
def test_closing_twice_yields_one_invoice_per_tenant(runs: int) -> None:
    cell = Cell(CATALOG, MemoryPublisher())
    deliver(cell, make_events(seed=5, count=400), 0)
    for _ in range(runs):
        cell.closer.close(Period(2026, 10), datetime(2026, 11, 2, tzinfo=UTC))
    october = invoices_by_period(cell.store)["2026-10"]
    assert [invoice["tenant"] for invoice in october] == ["org-1", "org-2", "org-3"]
    assert sorted(invoice["number"] for invoice in october) == ["000001", "000002", "000003"]


def test_an_unacknowledged_dead_letter_hands_the_record_back_and_stalls_its_partition() -> None:
    # GIVEN a broker that takes messages but never acknowledges them
    class Unacknowledged(MemoryPublisher):
        def flush(self) -> None:
            raise TimeoutError("1 message not acknowledged")

    cell = Cell(CATALOG, Unacknowledged())
    good = make_events(seed=1, count=1)[0]
    records = [
        DeliveredRecord(Delivery(USAGE_EVENTS.name, 0, 0), None, b"not json"),
        DeliveredRecord(Delivery(USAGE_EVENTS.name, 0, 1), None, good),
        DeliveredRecord(Delivery(USAGE_EVENTS.name, 1, 0), None, good.replace(b'"e0"', b'"other"')),
    ]
    # WHEN the batch is metered
    report = cell.deliver(records)
    # THEN the reject and the rest of its partition go back for redelivery; the other partition goes on
    assert [r.delivery.offset for r in report.failed if r.delivery.partition == 0] == [0, 1]
    assert report.accepted == 1 and report.rejected == 0


def test_a_batch_too_big_for_one_transaction_commits_in_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN partial states that may take only 400 bytes
    import meterline.pipeline.aggregate as aggregate

    monkeypatch.setattr(aggregate, "MAX_CHUNK_BYTES", 400)
    small, split = Cell(CATALOG, MemoryPublisher()), Cell(CATALOG, MemoryPublisher())
    monkeypatch.undo()
    lines = make_events(seed=21, count=600)
    deliver(small, lines, 0)
    monkeypatch.setattr(aggregate, "MAX_CHUNK_BYTES", 400)
    # WHEN the same usage is aggregated under that limit
    deliver(split, lines, 0)
    # THEN it took more transactions (batch markers), and the invoices are the same
    markers = [
        [item for item in cell.store.scan("aggregates") if str(item["sk"]).startswith("batch|")]
        for cell in (small, split)
    ]
    assert len(markers[1]) > len(markers[0])
    for cell in (small, split):
        cell.close(datetime(2027, 1, 1, tzinfo=UTC))
    assert pipeline_invoices(small) == pipeline_invoices(split)


CATALOG_V2 = parse_catalog(
    CATALOG_TEXT.replace(
        """customers:
  - {tenant: org-1, plan: standard, credits: "20.00", spend_alerts: ["50", "100"]}
  - {tenant: org-2, plan: standard}
  - {tenant: org-3, plan: standard}
billing: {first_period: "2026-10"}
""",
        """  - key: premium
    version: 1
    effective_from: "2026-01-01"
    currency: USD
    minimum_commit: "400.00"
    charges:
      - {meter: ingress_gb, model: per_unit, unit_price: "0.20"}
      - {meter: cku_hours, model: per_unit, unit_price: "2.10"}
      - {key: support, model: flat, amount: "300.00"}
customers:
  - tenant: org-1
    subscriptions:
      - {plan: standard, from: "2026-01-01", to: "2026-11-12"}
      - {plan: premium, from: "2026-11-12"}
    credits: "20.00"
    spend_alerts: ["50", "100"]
  - tenant: org-2
    plan: standard
    credit_grants:
      - {id: welcome, amount: "4000.00", effective_from: "2026-10-01", expires: "2027-01-01"}
  - tenant: org-3
    subscriptions: [{plan: premium, from: "2026-10-20", to: "2026-11-25"}]
billing: {first_period: "2026-10"}
""",
    ),
    "<v2 catalog>",
)


def test_subscriptions_grants_and_carried_values_close_to_what_rate_says() -> None:
    # GIVEN a catalog with a mid-November plan change, a grant spanning both months, a subscription
    # that starts and ends mid-month, and time-weighted usage carried from October into November
    cell = Cell(CATALOG_V2, MemoryPublisher())
    lines = make_events(seed=17, count=3000)
    late = [line for line in make_events(seed=18, count=300) if b'"time":"2026-10' in line]
    deliver(cell, lines, first_offset=0)
    cell.close(datetime(2026, 11, 15, tzinfo=UTC))
    deliver(cell, late, first_offset=len(lines))

    # WHEN November closes too
    cell.close(datetime(2026, 12, 2, tzinfo=UTC))

    # THEN both months equal `meterline rate` on the same events, line by line and invoice by invoice
    assert stream_vs_batch(CATALOG_V2, cell.store, lines + late) == []
    invoices = pipeline_invoices(cell)
    # AND org-1 has two November invoices, the grant was drawn in both months, never beyond its amount
    november = [(i["tenant"], i["subscription"]) for i in invoices["2026-11"]]
    assert ("org-1", "standard@2026-01-01") in november and ("org-1", "premium@2026-11-12") in november
    drawn = [
        Decimal(drawdown["amount"])
        for period in ("2026-10", "2026-11")
        for invoice in invoices[period]
        for drawdown in invoice["credit_drawdowns"]
        if drawdown["grant"] == "welcome"
    ] + [
        Decimal(drawdown["amount"])
        for amendment in all_amendments(cell.store)
        for drawdown in amendment["credit_drawdowns"]
        if drawdown["grant"] == "welcome"
    ]
    assert len(drawn) >= 2 and sum(drawn) == 4000


def status(event_id: str, cku: str, time: str) -> bytes:
    data = {"cku": cku, "partitions": 10}
    document = {"specversion": "1.0", "id": event_id, "source": "cell/test", "type": "kafka.status"}
    return orjson.dumps({**document, "subject": "org-1", "time": time, "data": data})


def test_a_late_sample_of_a_closed_period_changes_what_the_next_period_opens_with() -> None:
    # GIVEN org-1's cluster at 1 CKU from 10 October, October closed, then a late sample of 4 CKU at
    # 23:00 on 31 October (the last of October), and 2 CKU from 00:00 on 10 November
    cell = Cell(CATALOG, MemoryPublisher())
    deliver(cell, [status("a", "1", "2026-10-10T00:00:00Z")], first_offset=0)
    cell.close(datetime(2026, 11, 5, tzinfo=UTC))
    later = [status("b", "4", "2026-10-31T23:00:00Z"), status("c", "2", "2026-11-10T00:00:00Z")]
    deliver(cell, later, first_offset=1)

    # WHEN November closes
    cell.close(datetime(2026, 12, 2, tzinfo=UTC))

    # THEN November opened at 4 CKU: 4 × 216 h (1-9 Nov) + 2 × 504 h (10-30 Nov) = 1,872 CKU-hours
    invoices = pipeline_invoices(cell)
    (org_1,) = [invoice for invoice in invoices["2026-11"] if invoice["tenant"] == "org-1"]
    cku = [line for line in org_1["lines"] if line["meter"] == "cku_hours"]
    assert [line["quantity"] for line in cku] == ["1872"]
    # AND October's late hour is billed by an amendment of October, both months as `meterline rate` says
    (october,) = [a for a in all_amendments(cell.store) if a["tenant"] == "org-1"]
    assert october["adjusts_period"] == "2026-10"
    assert [(line["meter"], line["quantity_delta"]) for line in october["lines"]] == [("cku_hours", "3")]
    everything = [status("a", "1", "2026-10-10T00:00:00Z"), *later]
    assert stream_vs_batch(CATALOG, cell.store, everything) == []
