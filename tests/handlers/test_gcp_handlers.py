"""GCP handler tests: the real Cloud Run function entrypoints on Eventarc-shaped events (fixtures
from tests/events/gcp), with an in-memory store and publisher in place of Firestore and Kafka."""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import functions_framework
import orjson
import pytest
from cloudevents.http import CloudEvent
from google.events.cloud.firestore import Document, DocumentEventData, Value
from google.protobuf.timestamp_pb2 import Timestamp

from meterline.adapters import gcp_functions
from meterline.adapters.gcp_functions import TriggerError, Wiring, google_kafka_token
from meterline.adapters.memory import MemoryPublisher, StreamEntry, StreamingMemoryStore
from meterline.catalog import load_catalog
from meterline.offline import rate_lines
from meterline.periods import Period
from meterline.pipeline.meter import PublishError
from meterline.ports import Item, RetriableStoreError
from meterline.reconcile import differences
from meterline.topology import (
    AGGREGATES_TABLE,
    BILLING_ALERTS,
    BILLING_INVOICES,
    INVOICES_TABLE,
    TABLES,
    USAGE_REJECTED,
    USAGE_TABLE,
)
from tests.pipeline.test_cell import make_events

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events" / "gcp"
CATALOG = ROOT / "tests" / "events" / "aws" / "catalog.yaml"
DOCUMENTS = "projects/meterline-test/databases/(default)/documents/test-"


def load_handler(job: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"handler_{job}_gcp", ROOT / "functions" / job / "gcp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pubsub_events(name: str = "pubsub_usage_events.json") -> list[CloudEvent]:
    loaded = json.loads((EVENTS / name).read_text())
    return [
        CloudEvent(event["attributes"], event["data"])
        for event in (loaded if isinstance(loaded, list) else [loaded])
    ]


def pubsub_event(value: bytes, topic: str, partition: int, offset: int) -> CloudEvent:
    [template] = pubsub_events("pubsub_without_kafka_metadata.json")
    data = copy.deepcopy(template.data)
    data["message"]["data"] = base64.b64encode(value).decode()
    data["message"]["messageId"] = f"{partition}{offset:012d}"
    attributes = {"kafka.topic": topic, "kafka.partition": str(partition), "kafka.offset": str(offset)}
    data["message"]["attributes"] = attributes
    return CloudEvent(template.get_attributes(), data)


def document_created(table: str, item: Item, micros: int, as_json: bool = False) -> CloudEvent:
    """A Firestore document.v1.created event for a stored item, as Eventarc sends it."""
    fields = {}
    for name, value in item.items():
        kind = {str: "string_value", int: "integer_value", bytes: "bytes_value", bool: "boolean_value"}[
            type(value)
        ]
        fields[name] = Value(**{kind: value})
    created = Timestamp(seconds=micros // 1_000_000, nanos=micros % 1_000_000 * 1000)
    name = f"{DOCUMENTS}{table}/{item['pk']}|{item['sk']}"
    data = DocumentEventData(
        value=Document(name=name, fields=fields, create_time=created, update_time=created)
    )
    attributes = {
        "specversion": "1.0",
        "id": f"doc-{micros}",
        "source": "//firestore.googleapis.com/projects/meterline-test/databases/(default)",
        "type": "google.cloud.firestore.document.v1.created",
        "datacontenttype": "application/json" if as_json else "application/protobuf",
    }
    payload: Any = (
        json.loads(DocumentEventData.to_json(data)) if as_json else DocumentEventData.serialize(data)
    )
    return CloudEvent(attributes, payload)


@dataclass
class GcpCell:
    store: StreamingMemoryStore
    publisher: MemoryPublisher
    seen: dict[str, int]

    def created(self, table: str) -> list[StreamEntry]:
        """Documents created in the table since the last call: what Eventarc would announce."""
        log = self.store.streams[table]
        new, self.seen[table] = log[self.seen.get(table, 0) :], len(log)
        return new


@pytest.fixture
def gcp_cell(monkeypatch: pytest.MonkeyPatch) -> GcpCell:
    monkeypatch.setenv("METERLINE_TABLE_PREFIX", "test-")
    monkeypatch.setenv("METERLINE_CATALOG", str(CATALOG))
    store = StreamingMemoryStore([t.name for t in TABLES], [t.name for t in TABLES if t.stream is not None])
    publisher = MemoryPublisher()
    monkeypatch.setattr(Wiring, "store", store)  # Firestore and Managed Kafka are faked
    monkeypatch.setattr(Wiring, "publisher", publisher)
    return GcpCell(store, publisher, {})


def outcomes(store: StreamingMemoryStore) -> list[tuple[str, str, str, str]]:
    return sorted(
        (str(i["pk"]), str(i["sk"]), str(i["outcome"]), str(i["reason"])) for i in store.scan("outcomes")
    )


def run_chain(cell: GcpCell, handlers: dict[str, ModuleType], messages: Iterable[CloudEvent]) -> None:
    """Meter each message, then hand every created document to its trigger, twice (a redelivery)."""
    micros = 1_793_700_000_000_000
    for message in messages:
        handlers["meter"].handler(message)
        for entry in cell.created(USAGE_TABLE.name):
            micros += 1
            for _ in range(2):
                handlers["aggregate"].handler(document_created(USAGE_TABLE.name, entry.item, micros))
        for entry in cell.created(AGGREGATES_TABLE.name):
            micros += 1
            handlers["rate"].handler(document_created(AGGREGATES_TABLE.name, entry.item, micros))


def test_meter_accepts_dedups_and_dead_letters_one_message_at_a_time(gcp_cell: GcpCell) -> None:
    # GIVEN the Kafka records of a mixed batch, forwarded one Pub/Sub message each with kafka.* attributes
    meter = load_handler("meter")
    # WHEN each message is delivered
    for message in pubsub_events():
        meter.handler(message)
    # THEN three events are accepted; each other record has an outcome under its Kafka position
    assert len(list(gcp_cell.store.scan("usage"))) == 3
    assert outcomes(gcp_cell.store) == [
        ("usage.events|0", "00000000000000000101", "duplicate", "duplicate"),
        ("usage.events|0", "00000000000000000102", "rejected", "conflict"),
        ("usage.events|0", "00000000000000000103", "rejected", "malformed"),
        ("usage.events|0", "00000000000000000104", "rejected", "malformed"),
        ("usage.events|3", "00000000000000000010", "rejected", "unknown_type"),
    ]
    # AND every reject is dead-lettered with its original bytes and key
    rejected = gcp_cell.publisher.on(USAGE_REJECTED.name)
    assert sorted(m.headers["reason"] for m in rejected) == [
        b"conflict",
        b"malformed",
        b"malformed",
        b"unknown_type",
    ]
    assert (b"org-1", b"\xff\xfe not utf-8 \x80") in {(m.key, m.value) for m in rejected}


def test_redelivered_messages_reach_the_same_outcomes(gcp_cell: GcpCell) -> None:
    # GIVEN every message delivered once
    meter = load_handler("meter")
    for message in pubsub_events():
        meter.handler(message)
    before = (outcomes(gcp_cell.store), sorted(str(i["at"]) for i in gcp_cell.store.scan("usage")))
    # WHEN Pub/Sub delivers them all again (same messageIds, same attributes)
    for message in pubsub_events():
        meter.handler(message)
    # THEN no outcome changes: the first deliveries stay accepted, nothing becomes a duplicate
    assert (outcomes(gcp_cell.store), sorted(str(i["at"]) for i in gcp_cell.store.scan("usage"))) == before


def test_message_without_kafka_metadata_is_identified_by_its_message_id(gcp_cell: GcpCell) -> None:
    # GIVEN a message the sink forwarded without kafka.* attributes
    meter = load_handler("meter")
    [message] = pubsub_events("pubsub_without_kafka_metadata.json")
    # WHEN it is delivered twice, and the same event arrives again from Kafka offset 100
    meter.handler(message)
    meter.handler(copy.deepcopy(message))
    meter.handler(pubsub_events()[0])
    # THEN its delivery is the Pub/Sub topic and messageId: a redelivery, then a duplicate
    [usage] = gcp_cell.store.scan("usage")
    assert usage["at"] == "pubsub:usage-events|0|2070443601311540"
    assert [o[2:] for o in outcomes(gcp_cell.store)] == [("duplicate", "duplicate")]


def test_store_outage_raises_so_pubsub_delivers_again(
    gcp_cell: GcpCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a throttled store
    meter = load_handler("meter")
    message = pubsub_events()[0]

    def throttled(*args: Any, **kwargs: Any) -> None:
        raise RetriableStoreError("RESOURCE_EXHAUSTED")

    with monkeypatch.context() as patch:
        patch.setattr(StreamingMemoryStore, "put_new", throttled)
        # WHEN a message arrives THEN the function fails, and nothing is recorded
        with pytest.raises(RetriableStoreError):
            meter.handler(message)
    assert list(gcp_cell.store.scan("usage")) == [] and list(gcp_cell.store.scan("outcomes")) == []
    # AND the redelivery is accepted once the store is back
    meter.handler(message)
    assert [str(u["at"]) for u in gcp_cell.store.scan("usage")] == ["usage.events|0|100"]


def test_dead_letter_publish_failure_raises_and_a_reject_does_not(
    gcp_cell: GcpCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a malformed record, and a Kafka cluster that refuses the dead letter
    meter = load_handler("meter")
    malformed = pubsub_events()[3]

    def refused(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("broker transport failure")

    with monkeypatch.context() as patch:
        patch.setattr(MemoryPublisher, "publish", refused)
        # WHEN it is metered THEN the function fails so that Pub/Sub retries
        with pytest.raises(PublishError):
            meter.handler(malformed)
    # AND with the cluster back, the same reject returns normally and is dead-lettered
    assert meter.handler(malformed) is None
    assert [m.headers["reason"] for m in gcp_cell.publisher.on(USAGE_REJECTED.name)] == [b"malformed"]


def test_an_event_that_is_not_a_pubsub_message_is_a_one_line_trigger_error(gcp_cell: GcpCell) -> None:
    meter = load_handler("meter")
    event = CloudEvent(
        {"type": "google.cloud.storage.object.v1.finalized", "source": "//storage/b"}, {"bucket": "b"}
    )
    with pytest.raises(TriggerError, match="without a message") as raised:
        meter.handler(event)
    assert "\n" not in str(raised.value)


def test_aggregate_applies_a_usage_document_once_however_often_it_is_announced(gcp_cell: GcpCell) -> None:
    # GIVEN one accepted event's usage document, announced in JSON form
    load_handler("meter").handler(pubsub_events()[0])
    [entry] = gcp_cell.created(USAGE_TABLE.name)
    event = document_created(USAGE_TABLE.name, entry.item, 1_793_700_000_123_456, as_json=True)
    aggregate = load_handler("aggregate")
    # WHEN Eventarc delivers the event three times
    for _ in range(3):
        aggregate.handler(copy.deepcopy(event))
    # THEN one partial state and one batch marker exist
    aggregates = list(gcp_cell.store.scan(AGGREGATES_TABLE.name))
    assert len([i for i in aggregates if str(i["pk"]).startswith("partial|")]) == 1
    assert len([i for i in aggregates if i["pk"] == "batch"]) == 1


def test_two_documents_created_in_the_same_microsecond_are_both_aggregated(gcp_cell: GcpCell) -> None:
    # GIVEN two accepted events whose documents Firestore created in the same microsecond
    meter = load_handler("meter")
    for message in (pubsub_events()[0], pubsub_events()[5]):
        meter.handler(message)
    entries = gcp_cell.created(USAGE_TABLE.name)
    aggregate = load_handler("aggregate")
    # WHEN both are announced
    for entry in entries:
        aggregate.handler(document_created(USAGE_TABLE.name, entry.item, 1_793_700_000_000_001))
    # THEN each has its own marker and partial: the document name keeps their sequences apart
    aggregates = list(gcp_cell.store.scan(AGGREGATES_TABLE.name))
    assert len([i for i in aggregates if i["pk"] == "batch"]) == 2
    assert len([i for i in aggregates if str(i["pk"]).startswith("partial|")]) == 2


def test_a_document_with_a_field_the_ledger_never_writes_is_a_trigger_error(gcp_cell: GcpCell) -> None:
    data = DocumentEventData(
        value=Document(
            name=f"{DOCUMENTS}usage/x", fields={"pk": Value(string_value="x"), "n": Value(double_value=1.5)}
        )
    )
    with pytest.raises(TriggerError, match=r"'n' of .* holds a double_value"):
        load_handler("aggregate").handler(
            CloudEvent({"type": "t", "source": "s"}, DocumentEventData.serialize(data))
        )


def test_meter_aggregate_rate_close_chain_bills_what_meterline_rate_bills(gcp_cell: GcpCell) -> None:
    # GIVEN two months of generated usage (with duplicates, conflicts, malformed lines) and the
    # mixed fixture, one Pub/Sub message per Kafka record, some delivered twice
    handlers = {job: load_handler(job) for job in ("meter", "aggregate", "rate", "close")}
    lines = make_events(seed=11, count=160)
    messages = [pubsub_event(line, "usage.events", 1, offset) for offset, line in enumerate(lines)]
    messages += messages[::17] + pubsub_events()
    # WHEN every created document reaches aggregate (twice) and rate, and the scheduler closes
    run_chain(gcp_cell, handlers, messages)
    client = functions_framework.create_app("handler", str(ROOT / "functions" / "close" / "gcp.py"))
    response = client.test_client().post("/", json=json.loads((EVENTS / "scheduler_close.json").read_text()))
    # THEN October and November close, and their invoices equal `meterline rate` on the same records
    assert response.status_code == 200 and response.get_json() == {"closed": ["2026-10", "2026-11"]}
    values = lines + [base64.b64decode(m.data["message"]["data"]) for m in pubsub_events()]
    invoices: dict[str, list[dict[str, Any]]] = {}
    for item in gcp_cell.store.scan(INVOICES_TABLE.name):
        invoices.setdefault(str(item["sk"]), []).append(orjson.loads(item["body"]))  # type: ignore[arg-type]
    catalog = load_catalog(CATALOG)
    for period in ("2026-10", "2026-11"):
        assert (
            differences(period, rate_lines(catalog, values, Period.parse(period)).to_json(), invoices) == []
        )
    assert len(gcp_cell.publisher.on(BILLING_INVOICES.name)) == sum(len(v) for v in invoices.values()) == 4
    alerts = [orjson.loads(m.value)["alert_id"] for m in gcp_cell.publisher.on(BILLING_ALERTS.name)]
    assert len(alerts) == len(set(alerts)) > 0


def test_close_answers_a_time_without_offset_with_400(gcp_cell: GcpCell) -> None:
    app = functions_framework.create_app("handler", str(ROOT / "functions" / "close" / "gcp.py"))
    response = app.test_client().post("/", json={"now": "2026-12-01T02:00:00"})
    assert response.status_code == 400 and "UTC offset" in response.get_json()["error"]
    assert list(gcp_cell.store.scan(INVOICES_TABLE.name)) == []


def test_managed_kafka_token_carries_the_access_token_in_jwt_shape() -> None:
    token = google_kafka_token("ya29.secret", "meter@p.iam.gserviceaccount.com", 1_800_000_000, 1_799_996_400)
    header, claims, signature = (
        base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in token.split(".")
    )
    assert json.loads(header) == {"typ": "JWT", "alg": "GOOG_OAUTH2_TOKEN"}
    assert json.loads(claims)["sub"] == "meter@p.iam.gserviceaccount.com"
    assert json.loads(claims)["exp"] == 1_800_000_000 and signature == b"ya29.secret"


def test_settings_name_the_missing_setting() -> None:
    with pytest.raises(gcp_functions.SettingsError, match="METERLINE_TABLE_PREFIX"):
        gcp_functions.Settings.from_env({}, ROOT)


def test_rate_and_aggregate_pass_over_documents_that_are_not_theirs(gcp_cell: GcpCell) -> None:
    # GIVEN a period fence created in the aggregates collection (JSON form, as Eventarc may send it)
    loaded = json.loads((EVENTS / "firestore_fence_created.json").read_text())
    # WHEN rate and aggregate receive it
    load_handler("rate").handler(CloudEvent(loaded["attributes"], loaded["data"]))
    load_handler("aggregate").handler(CloudEvent(loaded["attributes"], loaded["data"]))
    # THEN neither writes or publishes anything
    assert all(list(gcp_cell.store.scan(t.name)) == [] for t in TABLES)
    assert gcp_cell.publisher.messages == []


def test_functions_framework_hands_a_protobuf_document_event_to_aggregate(gcp_cell: GcpCell) -> None:
    # GIVEN a usage document announced in protobuf, in binary content mode, as Eventarc posts it
    load_handler("meter").handler(pubsub_events()[0])
    [entry] = gcp_cell.created(USAGE_TABLE.name)
    event = document_created(USAGE_TABLE.name, entry.item, 1_793_700_000_000_007)
    headers = {
        f"ce-{name}": value for name, value in event.get_attributes().items() if name != "datacontenttype"
    }
    app = functions_framework.create_app("handler", str(ROOT / "functions" / "aggregate" / "gcp.py"))
    # WHEN it is posted twice
    for _ in range(2):
        response = app.test_client().post(
            "/", data=event.data, headers={**headers, "content-type": "application/protobuf"}
        )
        assert response.status_code == 200
    # THEN the usage is aggregated once
    assert len([i for i in gcp_cell.store.scan(AGGREGATES_TABLE.name) if i["pk"] == "batch"]) == 1
