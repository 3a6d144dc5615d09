"""GCP handler tests: the real Cloud Run function entrypoints on Eventarc-shaped events (fixtures
from tests/events/gcp), with an in-memory store and publisher in place of Firestore and Kafka."""

from __future__ import annotations

import base64
import copy
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import flask
import functions_framework
import pytest
from cloudevents.http import CloudEvent
from google.events.cloud.firestore import Document, DocumentEventData, Value
from google.protobuf.timestamp_pb2 import Timestamp

from meterline.adapters.gcp_functions import GcpSettings, TriggerError, google_kafka_token
from meterline.adapters.memory import MemoryExchange, MemoryPublisher, StreamEntry, StreamingMemoryStore
from meterline.bootstrap import Jobs
from meterline.catalog import load_catalog
from meterline.pipeline.aggregate import StreamRecord
from meterline.pipeline.ledger import is_partial
from meterline.pipeline.meter import PublishError
from meterline.pipeline.processing import MAX_ATTEMPTS
from meterline.ports import Item, RetriableStoreError, StoreError
from meterline.records import AcceptedUsage
from meterline.settings import SettingsError
from meterline.topology import (
    AGGREGATES_TABLE,
    CHARGES_TABLE,
    INVOICES_TABLE,
    TABLES,
    USAGE_REJECTED,
    USAGE_TABLE,
)
from tests.handlers.conftest import load_handler as load_cloud_handler
from tests.handlers.conftest import outcomes

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events" / "gcp"
CATALOG = ROOT / "tests" / "events" / "aws" / "catalog.yaml"
DOCUMENTS = "projects/meterline-test/databases/(default)/documents/test-"


def load_handler(job: str) -> ModuleType:
    return load_cloud_handler(job, "gcp")


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
    jobs: Jobs

    def handler(self, job: str) -> ModuleType:
        """functions/<job>/gcp.py with the cell's jobs."""
        module = load_handler(job)
        module.jobs.use(self.jobs)
        return module

    def app(self, job: str) -> flask.Flask:
        return framework_app(job, self.jobs)

    def created(self, table: str) -> list[StreamEntry]:
        """Documents created in the table since the last call: what Eventarc would announce."""
        log = self.store.streams[table]
        new, self.seen[table] = log[self.seen.get(table, 0) :], len(log)
        return new


def framework_app(job: str, jobs: Jobs) -> flask.Flask:
    """functions/<job>/gcp.py served as functions_framework serves it, with ``jobs``."""
    app = functions_framework.create_app("handler", str(ROOT / "functions" / job / "gcp.py"))
    sys.modules["gcp"].jobs.use(jobs)  # the framework loads the file as module "gcp"
    return app


@pytest.fixture
def gcp_cell() -> GcpCell:
    store = StreamingMemoryStore([t.name for t in TABLES], [t.name for t in TABLES if t.stream is not None])
    publisher = MemoryPublisher()
    # Firestore and Managed Kafka are faked; the clock stands after November's grace
    jobs = Jobs(load_catalog(CATALOG), store, publisher, lambda: datetime(2026, 12, 2, tzinfo=UTC))
    return GcpCell(store, publisher, {}, jobs)


def test_meter_accepts_dedups_and_dead_letters_one_message_at_a_time(gcp_cell: GcpCell) -> None:
    # GIVEN the Kafka records of a mixed batch, forwarded one Pub/Sub message each with kafka.* attributes
    meter = gcp_cell.handler("meter")
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
    meter = gcp_cell.handler("meter")
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
    meter = gcp_cell.handler("meter")
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
    meter = gcp_cell.handler("meter")
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
    meter = gcp_cell.handler("meter")
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


def test_a_message_the_store_keeps_refusing_is_dead_lettered_after_its_attempts(
    gcp_cell: GcpCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a store that refuses one event's usage item every time (not an outage)
    meter = gcp_cell.handler("meter")
    message = pubsub_events()[0]

    def refused(*args: Any, **kwargs: Any) -> None:
        raise StoreError("INVALID_ARGUMENT: the document is refused")

    monkeypatch.setattr(StreamingMemoryStore, "put_new", refused)
    # WHEN Pub/Sub delivers it again after each failure
    for _ in range(MAX_ATTEMPTS - 1):
        with pytest.raises(StoreError):
            meter.handler(message)
    # THEN the last attempt returns (acks it): it is dead-lettered as unprocessable, with its attempts
    assert meter.handler(message) is None
    [dead] = gcp_cell.publisher.on(USAGE_REJECTED.name)
    assert dead.headers["reason"] == b"unprocessable"
    assert dead.headers["attempts"] == str(MAX_ATTEMPTS).encode()
    assert [o[2:] for o in outcomes(gcp_cell.store)] == [("rejected", "unprocessable")]


def test_an_event_that_is_not_a_pubsub_message_is_a_one_line_trigger_error(gcp_cell: GcpCell) -> None:
    meter = gcp_cell.handler("meter")
    event = CloudEvent(
        {"type": "google.cloud.storage.object.v1.finalized", "source": "//storage/b"}, {"bucket": "b"}
    )
    with pytest.raises(TriggerError, match="without a message") as raised:
        meter.handler(event)
    assert "\n" not in str(raised.value)


def test_a_document_with_a_field_the_ledger_never_writes_is_a_trigger_error(gcp_cell: GcpCell) -> None:
    data = DocumentEventData(
        value=Document(
            name=f"{DOCUMENTS}usage/x", fields={"pk": Value(string_value="x"), "n": Value(double_value=1.5)}
        )
    )
    with pytest.raises(TriggerError, match=r"'n' of .* holds a double_value"):
        event = CloudEvent({"type": "t", "source": "s"}, DocumentEventData.serialize(data))
        gcp_cell.handler("rate").handler(event)


def test_close_acts_at_the_clock_whatever_time_the_request_names(gcp_cell: GcpCell) -> None:
    # GIVEN November's usage metered, and the clock in the middle of October (billing's first period)
    meter = gcp_cell.handler("meter")
    for message in pubsub_events():
        meter.handler(message)
    gcp_cell.jobs.clock = lambda: datetime(2026, 10, 20, tzinfo=UTC)
    # WHEN Cloud Scheduler's call names a time next year
    response = gcp_cell.app("close").test_client().post("/", json={"now": "2027-06-01T00:00:00+00:00"})
    # THEN nothing closes: no request moves the time a period closes at
    assert response.status_code == 200 and response.get_json() == {"closed": []}
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
    with pytest.raises(SettingsError, match="METERLINE_TABLE_PREFIX"):
        GcpSettings.from_env({}, ROOT)


def test_rate_passes_over_documents_that_are_not_partials(gcp_cell: GcpCell) -> None:
    # GIVEN a period fence created in the aggregates collection (JSON form, as Eventarc may send it)
    loaded = json.loads((EVENTS / "firestore_fence_created.json").read_text())
    # WHEN rate receives it
    gcp_cell.handler("rate").handler(CloudEvent(loaded["attributes"], loaded["data"]))
    # THEN it writes and publishes nothing
    assert all(list(gcp_cell.store.scan(t.name)) == [] for t in TABLES)
    assert gcp_cell.publisher.messages == []


def test_functions_framework_hands_a_protobuf_partial_document_to_rate(gcp_cell: GcpCell) -> None:
    # GIVEN a partial state the aggregator created, announced in protobuf, in binary content mode
    gcp_cell.handler("meter").handler(pubsub_events()[0])
    [usage] = gcp_cell.created(USAGE_TABLE.name)
    gcp_cell.jobs.aggregator.run([StreamRecord("1", AcceptedUsage.from_item(usage.item))])
    [partial] = [e.item for e in gcp_cell.created(AGGREGATES_TABLE.name) if is_partial(e.item)]
    event = document_created(AGGREGATES_TABLE.name, partial, 1_793_700_000_000_007)
    headers = {
        f"ce-{name}": value for name, value in event.get_attributes().items() if name != "datacontenttype"
    }
    app = gcp_cell.app("rate")
    # WHEN it is posted
    response = app.test_client().post(
        "/", data=event.data, headers={**headers, "content-type": "application/protobuf"}
    )
    # THEN rate stores the tenant's running charges
    assert response.status_code == 200
    assert [str(item["pk"]) for item in gcp_cell.store.scan(CHARGES_TABLE.name)] != []


def test_publish_reports_months_final_at_the_clock_whatever_time_the_request_names(gcp_cell: GcpCell) -> None:
    # GIVEN a cell named gcp-europe-west1 without usage, the home's exchange (a fake: the S3 side has
    # its own contract suite), and the clock after November's grace
    exchange = MemoryExchange()
    gcp_cell.jobs.cell, gcp_cell.jobs.statements = "gcp-europe-west1", exchange
    app = gcp_cell.app("publish").test_client()
    # WHEN Cloud Scheduler's call names a time next year
    response = app.post("/", json={"now": "2027-06-01T00:00:00+00:00"})
    # THEN the months up to the clock's are reported final, empty, under the cell's name; none later
    assert response.status_code == 200
    assert response.get_json() == {"published": 0, "final": ["2026-10", "2026-11"]}
    assert sorted(exchange.objects) == [
        "statements/gcp-europe-west1/2026-10/final.json",
        "statements/gcp-europe-west1/2026-11/final.json",
    ]
    # AND a second call puts nothing again
    assert app.post("/").get_json() == {"published": 0, "final": []}
