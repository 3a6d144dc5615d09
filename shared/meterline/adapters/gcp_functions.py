"""Wiring for the Cloud Run functions (2nd gen): the jobs on Firestore and Managed Kafka, and the
decoding of their Eventarc events. The handlers pass ``os.environ`` in; nothing here reads it.

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
  values; timestamp fields (a TTL's ``expires_at``) are not ledger data and are left out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meterline.catalog import Catalog, load_catalog
from meterline.ports import Item, Publisher
from meterline.records import Delivery

if TYPE_CHECKING:
    from confluent_kafka import Consumer

DRAIN_SECONDS = 40.0
"""A scheduled aggregate run takes no new batch after this long: it ends well inside its 60 s
timeout and before the next minute's run."""
AGGREGATE_CONSUMER_GROUP = "aggregate"


class SettingsError(ValueError):
    pass


class TriggerError(ValueError):
    """The event is not of the shape this function is deployed for (a wiring mistake)."""


@dataclass(frozen=True)
class Settings:
    catalog_path: Path
    collection_prefix: str
    grace: timedelta
    project: str | None = None
    database: str = "(default)"
    kafka_bootstrap: str = ""
    kafka_auth: str = "oauth"
    """``oauth``: SASL OAUTHBEARER with the service account's Google token; ``plain``: SASL PLAIN."""
    kafka_username: str = ""
    kafka_password: str = ""
    consumer_group: str = AGGREGATE_CONSUMER_GROUP
    drain_seconds: float = DRAIN_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str], package_root: Path) -> Settings:
        prefix = env.get("METERLINE_TABLE_PREFIX")
        if not prefix:
            raise SettingsError("the function setting METERLINE_TABLE_PREFIX is missing")
        try:
            grace_hours = float(env.get("METERLINE_GRACE_HOURS", "1"))
        except ValueError:
            raise SettingsError("METERLINE_GRACE_HOURS must be a number of hours") from None
        try:
            drain_seconds = float(env.get("METERLINE_DRAIN_SECONDS", str(DRAIN_SECONDS)))
        except ValueError:
            raise SettingsError("METERLINE_DRAIN_SECONDS must be a number of seconds") from None
        if not 0 < drain_seconds <= 3600:
            raise SettingsError(f"METERLINE_DRAIN_SECONDS must be in (0, 3600], not {drain_seconds}")
        auth = env.get("METERLINE_KAFKA_AUTH", "oauth")
        if auth not in ("oauth", "plain", "none"):
            raise SettingsError(f"METERLINE_KAFKA_AUTH must be oauth, plain or none, not {auth!r}")
        return cls(
            catalog_path=package_root / env.get("METERLINE_CATALOG", "catalog.yaml"),
            collection_prefix=prefix,
            grace=timedelta(hours=grace_hours),
            project=env.get("GOOGLE_CLOUD_PROJECT") or None,
            database=env.get("METERLINE_FIRESTORE_DATABASE", "(default)"),
            kafka_bootstrap=env.get("METERLINE_KAFKA_BOOTSTRAP", ""),
            kafka_auth=auth,
            kafka_username=env.get("METERLINE_KAFKA_USERNAME", ""),
            kafka_password=env.get("METERLINE_KAFKA_PASSWORD", ""),
            consumer_group=env.get("METERLINE_CONSUMER_GROUP") or AGGREGATE_CONSUMER_GROUP,
            drain_seconds=drain_seconds,
        )


class Wiring:
    """Built once per function instance; clients are reused across invocations."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self.settings.catalog_path)

    @cached_property
    def store(self) -> Any:
        from google.cloud import firestore

        from meterline.adapters.firestore import FirestoreStore  # type: ignore[import-not-found,unused-ignore]

        client = firestore.Client(project=self.settings.project, database=self.settings.database)
        return FirestoreStore(client, self.settings.collection_prefix)

    @cached_property
    def publisher(self) -> Publisher:
        from meterline.adapters.kafka import KafkaPublisher

        return KafkaPublisher(self.kafka_config())

    def consumer(self) -> Consumer:
        """A consumer in the job's group that commits only when told to, and reports the end of
        each partition (what ends a batch short of its size)."""
        from confluent_kafka import Consumer

        return Consumer(
            {
                **self.kafka_config(),
                "group.id": self.settings.consumer_group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 100,
            }
        )

    def kafka_config(self) -> dict[str, Any]:
        settings = self.settings
        if not settings.kafka_bootstrap:
            raise SettingsError("the function setting METERLINE_KAFKA_BOOTSTRAP is missing")
        if settings.kafka_auth == "none":  # a plaintext listener: the local runtime's broker
            return {"bootstrap.servers": settings.kafka_bootstrap}
        if settings.kafka_auth == "plain":
            return managed_kafka_plain_config(
                settings.kafka_bootstrap, settings.kafka_username, settings.kafka_password
            )
        return managed_kafka_oauth_config(settings.kafka_bootstrap)


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


def managed_kafka_plain_config(bootstrap: str, username: str, password: str) -> dict[str, Any]:
    """SASL PLAIN: the service account's email and, as password, its base64 key file (from a
    secret) or an access token — a token expires within the hour, so prefer OAUTHBEARER."""
    if not username or not password:
        raise SettingsError("METERLINE_KAFKA_USERNAME and METERLINE_KAFKA_PASSWORD are needed for plain auth")
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "PLAIN",
        "sasl.username": username,
        "sasl.password": password,
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


def google_id_token(audience: str) -> Callable[[], str]:
    """The function's service account's Google ID token for ``audience``, fresh per call (from the
    metadata server): what the home's statements role trusts a GCP cell's publish by."""

    def fetch() -> str:
        import google.auth.transport.requests
        import google.oauth2.id_token

        request = google.auth.transport.requests.Request()
        token: str = google.oauth2.id_token.fetch_id_token(request, audience)  # type: ignore[no-untyped-call]
        return token

    return fetch
