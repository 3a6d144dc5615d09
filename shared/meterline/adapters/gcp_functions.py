"""The Cloud Run functions' adapter (2nd gen): their settings (the jobs on Firestore and Managed
Kafka) and the decoding of their Eventarc events. The handlers pass ``os.environ`` in; nothing
here reads it.

What the triggers are taken to carry:

- meter: a Pub/Sub ``messagePublished`` CloudEvent per Kafka record, as the Kafka Connect Pub/Sub
  sink forwards it with ``metadata.publish=true``: ``message.data`` is the record value and the
  attributes ``kafka.topic``, ``kafka.partition`` and ``kafka.offset`` say where it came from
  (``kafka.key``, else the sink's ``key`` attribute, is the record key). Without them the Pub/Sub
  topic, partition 0 and the ``messageId`` stand in: Pub/Sub redelivers a message with the same
  ``messageId``, so a redelivery keeps its delivery identity either way. Eventarc pushes without
  ordering keys, so two conflicting events of one partition may be metered in either order:
  which one stands (and which is rejected as the conflict) is arrival order here, not offset order.
- aggregate: no trigger of its own. Cloud Scheduler calls it over HTTP every minute and it reads
  ``usage.events`` itself in its consumer group (``kafka_drain``), a batch of up to 1,000 records
  per partition and one aggregator run per batch, as Lambda consumes a stream. It joins each
  record with what meter wrote (``usage_join``), so meter's deliveries must be the Kafka
  positions: the sink must publish the ``kafka.*`` attributes (``metadata.publish=true``).
- rate: a Firestore ``document.v1.created`` event per aggregates document, in protobuf
  (``DocumentEventData``) or its JSON form. The document's fields are the store item's
  attributes, ``pk`` and ``sk`` included, with Firestore's own string, integer, bytes and boolean
  values; a timestamp field is not ledger data and is left out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any, ClassVar

from meterline.pipeline.meter import DeliveredRecord
from meterline.pipeline.processing import MeterProcessor, log_set_aside, log_settled
from meterline.ports import Item, Publisher, Store
from meterline.records import Delivery
from meterline.settings import CellSettings, KafkaAuth, SettingsError, env
from meterline.topology import AGGREGATE, USAGE_EVENTS

if TYPE_CHECKING:
    from confluent_kafka import Consumer

    from meterline.adapters.kafka_drain import DrainReport
    from meterline.bootstrap import Jobs
    from meterline.pipeline.meter import Meter

DRAIN_SECONDS = 40.0
"""A scheduled aggregate run takes no new batch after this long: it ends well inside its 60 s
timeout and before the next minute's run."""
AGGREGATE_CONSUMER_GROUP = "aggregate"


class TriggerError(ValueError):
    """The event is not of the shape this function is deployed for (a wiring mistake)."""


@dataclass(frozen=True, kw_only=True)
class GcpSettings(CellSettings):
    """What a Cloud Run function of the cell reads from its environment."""

    cloud: ClassVar[str] = "gcp"

    project: str = env("GOOGLE_CLOUD_PROJECT", "")
    database: str = env("METERLINE_FIRESTORE_DATABASE", "(default)")
    consumer_group: str = env("METERLINE_CONSUMER_GROUP", "")
    """The group in which aggregate reads ``usage.events`` itself: set for that function alone."""
    drain_seconds: float = env("METERLINE_DRAIN_SECONDS", DRAIN_SECONDS)
    emulator_host: str = env("FIRESTORE_EMULATOR_HOST", "")
    """Google's Firestore emulator instead of Firestore (a local cell only)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.drain_seconds <= 3600:
            raise SettingsError(f"METERLINE_DRAIN_SECONDS must be in (0, 3600], not {self.drain_seconds}")

    def open_store(self) -> Store:
        from meterline.adapters.firestore import FirestoreStore, firestore_client

        client = firestore_client(self.project or None, self.database, self.emulator_host)
        return FirestoreStore(client, self.table_prefix)

    def open_publisher(self) -> Publisher:
        from meterline.adapters.kafka import KafkaPublisher

        return KafkaPublisher(self.kafka_config())

    def consumer(self) -> Consumer:
        """A consumer in the job's group that commits only when told to, and reports the end of
        each partition (what ends a batch short of its size)."""
        from confluent_kafka import Consumer

        if not self.consumer_group:
            raise SettingsError("the function setting METERLINE_CONSUMER_GROUP is missing: it reads no topic")
        return Consumer(
            {
                **self.kafka_config(),
                "group.id": self.consumer_group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 100,
            }
        )

    def kafka_config(self) -> dict[str, Any]:
        bootstrap = self.require_kafka()
        if self.kafka_auth is KafkaAuth.NONE:
            return {"bootstrap.servers": bootstrap}
        return managed_kafka_oauth_config(bootstrap)


# Trigger processors: decode the event, process it under the shared failure policy
# (pipeline.processing), and answer as the trigger expects.


def meter_message(source: str, data: Mapping[str, Any], meter: Meter, logger: logging.Logger) -> None:
    """meter's Pub/Sub message, one Kafka record. Returning acks it; raising has Pub/Sub deliver it
    again: a store or publish failure raises until the record has had its attempts (an outage, for
    as long as it lasts), and a reject is an outcome, which returns."""
    record = pubsub_record(source, data)
    settled = MeterProcessor(meter).settle(DeliveredRecord(record.delivery, record.key, record.value))
    meter.publisher.flush()
    log_settled(logger, record.delivery, settled)


def rate_document(data: bytes | Mapping[str, Any], cell: Jobs) -> None:
    """rate's Firestore event: markers, fences and indexes land in the collection too; only a
    partial state is rated."""
    from meterline.pipeline.ledger import is_partial

    document = created_document(data)
    if is_partial(document.item):
        cell.charges.run([document.item], cell.clock())


def drain_usage(cell: Jobs, logger: logging.Logger) -> DrainReport:
    """One scheduled aggregate run: ``usage.events`` drained in the settings' consumer group. A
    store or broker failure raises; what was committed before it stays, the next run goes on."""
    from meterline.adapters.kafka_drain import KafkaDrain

    settings = cell.settings
    if not isinstance(settings, GcpSettings):
        raise TypeError(f"aggregate drains Kafka with GCP settings, not {settings!r}")
    consumer = settings.consumer()
    try:
        drain = KafkaDrain(
            consumer,
            USAGE_EVENTS.name,
            cell.aggregator,
            cell.store,
            cell.metering,
            batch_size=AGGREGATE.batch_size,
            budget_seconds=settings.drain_seconds,
        )
        report = drain.run()
    finally:
        consumer.close()
    log_set_aside(logger, report.dead_lettered)
    return report


def managed_kafka_oauth_config(bootstrap: str) -> dict[str, Any]:
    """Managed Service for Apache Kafka with SASL OAUTHBEARER: the function's own service account,
    its Google access token wrapped in the JWT shape librdkafka expects (see google_kafka_token)."""
    import google.auth
    from google.auth.transport.requests import Request

    credentials: Any = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])[0]

    def token(_: str) -> tuple[str, float]:
        if not credentials.valid:
            credentials.refresh(Request())
        expiry = credentials.expiry.replace(tzinfo=UTC).timestamp()  # google-auth keeps naive UTC
        principal = getattr(credentials, "service_account_email", "")
        return google_kafka_token(credentials.token, principal, int(expiry), int(time.time())), expiry

    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "OAUTHBEARER",
        "oauth_cb": token,
    }


def google_kafka_token(access_token: str, principal: str, expires: int, issued: int) -> str:
    """Managed Kafka's OAUTHBEARER token: a JWT-shaped string whose header names the
    ``GOOG_OAUTH2_TOKEN`` algorithm and whose third part is the access token itself."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = json.dumps({"typ": "JWT", "alg": "GOOG_OAUTH2_TOKEN"}).encode()
    claims = json.dumps({"exp": expires, "iat": issued, "iss": "Google", "sub": principal, "scope": "kafka"})
    return ".".join((part(header), part(claims.encode()), part(access_token.encode())))


@dataclass(frozen=True, slots=True)
class PubSubRecord:
    delivery: Delivery
    key: bytes | None
    value: bytes


def pubsub_record(source: str, data: Mapping[str, Any]) -> PubSubRecord:
    """The Kafka record inside a Pub/Sub ``messagePublished`` event's data."""
    message = data.get("message")
    if not isinstance(message, Mapping):
        raise TriggerError(f"a Pub/Sub event from {source} without a message")
    attributes: Mapping[str, str] = message.get("attributes") or {}
    try:
        value = base64.b64decode(message.get("data") or "", validate=True)
    except ValueError:
        raise TriggerError(
            f"Pub/Sub message {message.get('messageId')} holds data that is not base64"
        ) from None
    key_text = attributes.get("kafka.key", attributes.get("key"))
    return PubSubRecord(
        _delivery(source, message, attributes), None if key_text is None else key_text.encode(), value
    )


def _delivery(source: str, message: Mapping[str, Any], attributes: Mapping[str, str]) -> Delivery:
    topic, partition, offset = (attributes.get(f"kafka.{name}") for name in ("topic", "partition", "offset"))
    if topic and partition and offset:
        try:
            return Delivery(topic, int(partition), int(offset))
        except ValueError:
            raise TriggerError(
                f"kafka.partition {partition!r} or kafka.offset {offset!r} is not a whole number"
            ) from None
    message_id = str(message.get("messageId") or "")
    if not message_id:
        raise TriggerError(f"a Pub/Sub message from {source} has neither kafka.* attributes nor a messageId")
    # Pub/Sub's message ids are decimal in practice; any other spelling still maps to one number.
    number = int(message_id) if message_id.isdigit() else _digest64(message_id)
    return Delivery("pubsub:" + source.rsplit("/", 1)[-1], 0, number)


@dataclass(frozen=True, slots=True)
class CreatedDocument:
    name: str
    item: Item

    @property
    def collection(self) -> str:
        return self.name.rsplit("/", 2)[-2]


def created_document(data: bytes | Mapping[str, Any]) -> CreatedDocument:
    """The document a Firestore ``document.v1.created`` event carries, as a store item."""
    from google.events.cloud.firestore import Document, DocumentEventData

    try:
        if isinstance(data, bytes | bytearray):
            event = DocumentEventData.deserialize(bytes(data))
        else:
            event = DocumentEventData.from_json(json.dumps(data), ignore_unknown_fields=True)
    except Exception as error:
        raise TriggerError(f"a Firestore event that is not DocumentEventData: {error}") from None
    document = Document.pb(event.value)
    if not document.name:
        raise TriggerError("a Firestore event without a created document")
    item = document_item(document)
    for key in ("pk", "sk"):
        if not isinstance(item.get(key), str):
            raise TriggerError(f"document {document.name} has no string field {key!r}")
    return CreatedDocument(document.name, item)


def document_item(document: Any) -> Item:
    item: Item = {}
    for name, value in document.fields.items():
        kind = value.WhichOneof("value_type")
        if kind in ("string_value", "integer_value", "bytes_value", "boolean_value"):
            item[name] = getattr(value, kind)
        elif kind != "timestamp_value":
            raise TriggerError(f"field {name!r} of {document.name} holds a {kind}, not a ledger value")
    return item


def _digest64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
