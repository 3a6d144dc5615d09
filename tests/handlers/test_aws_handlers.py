from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime
from typing import Any

import orjson

from meterline.adapters.dynamodb import DynamoStore, encode_item
from meterline.catalog import load_catalog
from meterline.pipeline.invoices import invoices_by_period
from meterline.pipeline.ledger import DEAD_PK, is_partial
from meterline.records import AcceptedUsage, unpack_book
from meterline.topology import BILLING_ALERTS, BILLING_INVOICES, USAGE_REJECTED
from meterline.usage import UsageBook, fold

from .conftest import CATALOG, AwsCell, load_event


def stream_event(client: Any, table: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """DynamoDB stream INSERT records as Lambda delivers them (binary values base64-encoded)."""
    records = []
    for number, item in enumerate(items, start=1):
        image = {
            name: ({"B": base64.b64encode(value["B"]).decode()} if "B" in value else value)
            for name, value in encode_item(item).items()
        }
        records.append(
            {
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "dynamodb": {"SequenceNumber": f"{number:021d}", "NewImage": image},
            }
        )
    return {"Records": records}


def test_meter_accepts_dedups_and_dead_letters_a_mixed_multi_partition_batch(aws_cell: AwsCell) -> None:
    # GIVEN an MSK batch over two partitions: a good event, its duplicate, a conflict, non-UTF-8 bytes,
    # an empty value, a decimal string value, a keyless record and an unknown type
    meter = aws_cell.handler("meter")
    event = load_event("msk_mixed_batch.json")
    # WHEN the handler runs
    response = meter.handler(event, aws_cell.context)
    # THEN nothing is retried, three events are accepted and every reject is dead-lettered with its bytes
    assert response == {"batchItemFailures": []}
    store = DynamoStore(aws_cell.client, "test-")
    assert len(list(store.scan("usage"))) == 3
    outcomes = sorted((item["outcome"], item["reason"]) for item in store.scan("outcomes"))
    assert outcomes == [
        ("duplicate", "duplicate"),
        ("rejected", "conflict"),
        ("rejected", "malformed"),
        ("rejected", "malformed"),
        ("rejected", "unknown_type"),
    ]
    rejected = aws_cell.publisher.on(USAGE_REJECTED.name)
    assert sorted(m.headers["reason"] for m in rejected) == [
        b"conflict",
        b"malformed",
        b"malformed",
        b"unknown_type",
    ]
    assert b"\xff\xfe not utf-8 \x80" in {m.value for m in rejected}


def test_meter_redelivery_of_the_same_batch_reaches_the_same_outcomes(aws_cell: AwsCell) -> None:
    meter = aws_cell.handler("meter")
    event = load_event("msk_mixed_batch.json")
    meter.handler(copy.deepcopy(event), aws_cell.context)
    store = DynamoStore(aws_cell.client, "test-")
    before = sorted((i["sk"], i["outcome"]) for i in store.scan("outcomes"))
    meter.handler(copy.deepcopy(event), aws_cell.context)
    after = sorted((i["sk"], i["outcome"]) for i in store.scan("outcomes"))
    assert before == after
    assert len(list(store.scan("usage"))) == 3


def test_oversized_record_is_rejected_not_retried(aws_cell: AwsCell) -> None:
    # GIVEN a 1.1 MB record (over MSK's default message limit) that is not a valid event
    meter = aws_cell.handler("meter")
    event = load_event("msk_mixed_batch.json")
    big = b'{"specversion": "1.0", "id": "x", "data": "' + b"a" * 1_100_000 + b'"}'
    event["records"] = {
        "usage.events-5": [
            {**event["records"]["usage.events-3"][0], "partition": 5, "value": base64.b64encode(big).decode()}
        ]
    }
    # WHEN metered THEN it is dead-lettered as an invalid envelope, not handed back
    assert meter.handler(event, aws_cell.context) == {"batchItemFailures": []}
    [message] = aws_cell.publisher.on(USAGE_REJECTED.name)
    assert message.headers["reason"] == b"invalid_envelope" and len(message.value) == len(big)


def test_store_outage_hands_records_back_as_batch_item_failures(aws_cell: AwsCell, monkeypatch: Any) -> None:
    meter = aws_cell.handler("meter")
    from meterline.ports import RetriableStoreError

    def throttled(*args: Any, **kwargs: Any) -> None:
        raise RetriableStoreError("ProvisionedThroughputExceededException")

    monkeypatch.setattr(DynamoStore, "put_new", throttled)
    response = meter.handler(load_event("msk_mixed_batch.json"), aws_cell.context)
    failed = {
        (f["itemIdentifier"]["partition"], f["itemIdentifier"]["offset"])
        for f in response["batchItemFailures"]
    }
    assert ("usage.events-0", 100) in failed and ("usage.events-3", 7) in failed


def test_aggregate_rate_and_close_on_dynamodb_produce_the_invoice(aws_cell: AwsCell) -> None:
    # GIVEN metered usage
    aws_cell.handler("meter").handler(load_event("msk_mixed_batch.json"), aws_cell.context)
    store = DynamoStore(aws_cell.client, "test-")
    usage_items = sorted(store.scan("usage"), key=lambda item: str(item["pk"]))
    # WHEN the usage stream reaches aggregate (twice: a retried batch), and the partials reach rate
    aggregate = aws_cell.handler("aggregate")
    for _ in range(2):
        aggregate.handler(stream_event(aws_cell.client, "usage", usage_items), aws_cell.context)
    partials = [item for item in store.scan("aggregates") if is_partial(item)]
    aws_cell.handler("rate").handler(stream_event(aws_cell.client, "aggregates", partials), aws_cell.context)
    # AND the schedule fires after November's grace: it closes every period from billing's first
    # (October, without usage) to November
    aws_cell.clock.set(datetime(2026, 12, 1, 2, tzinfo=UTC))
    response = aws_cell.handler("close").handler({}, aws_cell.context)
    # THEN org-1 is billed 1 GB at 0.10 plus support, org-2 0.25 GB, 2 CKU for 645.75 h, 120 partitions
    assert response == {"closed": ["2026-10", "2026-11"]}
    invoices = {invoice["tenant"]: invoice for invoice in invoices_by_period(store)["2026-11"]}
    assert invoices["org-1"]["total"] == "10.10"
    # org-2: 0.25 × 0.10 = 0.025 → 0.03; cku 2 × (Nov 3 10:15 → Dec 1 00:00 = 661.75 h) × 1.50 = 1985.25;
    # partitions ceil(120/100) × 1.00 = 2.00; support 10.00
    assert invoices["org-2"]["total"] == "1997.28"
    assert len(aws_cell.publisher.on(BILLING_INVOICES.name)) == 4  # October's flat fees too
    assert [orjson.loads(m.value)["threshold"] for m in aws_cell.publisher.on(BILLING_ALERTS.name)] == [
        "0.05"
    ]


def test_aggregate_sets_aside_a_usage_item_it_cannot_read_and_applies_the_rest(aws_cell: AwsCell) -> None:
    # GIVEN metered usage, one of whose stream records carries measurements that are not JSON
    aws_cell.handler("meter").handler(load_event("msk_mixed_batch.json"), aws_cell.context)
    store = DynamoStore(aws_cell.client, "test-")
    usage_items = sorted(store.scan("usage"), key=lambda item: str(item["pk"]))
    event = stream_event(aws_cell.client, "usage", usage_items)
    event["Records"][0]["dynamodb"]["NewImage"]["m"] = {"B": base64.b64encode(b"not json").decode()}
    # WHEN aggregate runs on the batch, and on its retry
    aggregate = aws_cell.handler("aggregate")
    for _ in range(2):
        assert aggregate.handler(copy.deepcopy(event), aws_cell.context) == {"batchItemFailures": []}
    # THEN the other records are applied once, and the unreadable one is filed under `dead`, once
    catalog = load_catalog(CATALOG)
    applied, expected = UsageBook(), UsageBook()
    for partial in (item for item in store.scan("aggregates") if is_partial(item)):
        applied.merge(unpack_book(catalog, bytes(partial["book"])))  # type: ignore[arg-type]
    for item in usage_items[1:]:
        usage = AcceptedUsage.from_item(item)
        (tenant, _, event_id), time = usage.key, usage.time
        readings = [((key, group), catalog.meters[key], value) for key, group, value in usage.measurements]
        fold(expected.states_on(tenant, usage.period, time.day), readings, time, event_id)
    assert {tp: applied.quantities(catalog, *tp) for tp in applied.tenant_periods()} == {
        tp: expected.quantities(catalog, *tp) for tp in expected.tenant_periods()
    }
    [dead] = [item for item in store.scan("aggregates") if item["pk"] == DEAD_PK]
    assert str(dead["sk"]).startswith(f"{1:040d}|") and "JSONDecodeError" in str(dead["error"])


def test_close_acts_at_the_clock_and_a_now_in_its_event_closes_nothing_early(aws_cell: AwsCell) -> None:
    # GIVEN November's usage, aggregated, and the clock in the middle of October (billing's first period)
    aws_cell.handler("meter").handler(load_event("msk_mixed_batch.json"), aws_cell.context)
    store = DynamoStore(aws_cell.client, "test-")
    usage_items = sorted(store.scan("usage"), key=lambda item: str(item["pk"]))
    aws_cell.handler("aggregate").handler(
        stream_event(aws_cell.client, "usage", usage_items), aws_cell.context
    )
    aws_cell.clock.set(datetime(2026, 10, 20, tzinfo=UTC))
    # WHEN the schedule's event says it is next year
    response = aws_cell.handler("close").handler({"now": "2027-06-01T00:00:00+00:00"}, aws_cell.context)
    # THEN nothing closes: no payload moves the time a period closes at
    assert response == {"closed": []}
    assert list(store.scan("invoices")) == []
