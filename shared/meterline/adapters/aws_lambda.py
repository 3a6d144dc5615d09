"""Wiring for the AWS Lambda handlers: the jobs on DynamoDB and MSK, from the function's settings.

The handlers pass ``os.environ`` in; nothing here reads the environment itself.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meterline.catalog import Catalog, load_catalog
from meterline.pipeline.meter import DeliveredRecord
from meterline.ports import Item, Publisher
from meterline.records import AcceptedUsage, Delivery

if TYPE_CHECKING:  # the meter function does not load the aggregator
    from meterline.pipeline.aggregate import Aggregator, StreamRecord


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    catalog_path: Path
    table_prefix: str
    kafka_bootstrap: str
    region: str
    grace: timedelta
    endpoint_url: str | None = None
    """A DynamoDB endpoint other than AWS's (the local runtime's moto server)."""
    kafka_iam: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str], package_root: Path) -> Settings:
        def need(name: str) -> str:
            value = env.get(name)
            if not value:
                raise SettingsError(f"the function setting {name} is missing")
            return value

        try:
            grace_hours = float(env.get("METERLINE_GRACE_HOURS", "1"))
        except ValueError:
            raise SettingsError("METERLINE_GRACE_HOURS must be a number of hours") from None
        return cls(
            catalog_path=package_root / env.get("METERLINE_CATALOG", "catalog.yaml"),
            table_prefix=need("METERLINE_TABLE_PREFIX"),
            kafka_bootstrap=env.get("METERLINE_KAFKA_BOOTSTRAP", ""),
            region=env.get("AWS_REGION", "us-east-1"),
            grace=timedelta(hours=grace_hours),
            endpoint_url=env.get("METERLINE_DYNAMODB_ENDPOINT") or None,
            kafka_iam=env.get("METERLINE_KAFKA_AUTH", "iam") == "iam",
        )


class Wiring:
    """Built once per Lambda container; clients are reused across invocations."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self.settings.catalog_path)

    @cached_property
    def store(self) -> Any:
        import boto3

        from meterline.adapters.dynamodb import DynamoStore

        client = boto3.client(
            "dynamodb", region_name=self.settings.region, endpoint_url=self.settings.endpoint_url
        )
        return DynamoStore(client, self.settings.table_prefix)

    @cached_property
    def publisher(self) -> Publisher:
        from meterline.adapters.kafka import KafkaPublisher, msk_iam_config

        if not self.settings.kafka_bootstrap:
            raise SettingsError("the function setting METERLINE_KAFKA_BOOTSTRAP is missing")
        if self.settings.kafka_iam:
            return KafkaPublisher(msk_iam_config(self.settings.kafka_bootstrap, self.settings.region))
        return KafkaPublisher({"bootstrap.servers": self.settings.kafka_bootstrap})


def stream_image(image: Mapping[str, Mapping[str, Any]]) -> Item:
    """A DynamoDB stream record's NewImage as a store item (binary values arrive base64-encoded)."""
    from meterline.adapters.dynamodb import decode_item

    decoded = {
        name: ({"B": base64.b64decode(value["B"])} if "B" in value and isinstance(value["B"], str) else value)
        for name, value in image.items()
    }
    return decode_item(decoded)  # type: ignore[arg-type]


def usage_from_stream(image: Mapping[str, Mapping[str, Any]]) -> AcceptedUsage:
    return AcceptedUsage.from_item(stream_image(image))


def stream_records(event: Mapping[str, Any], aggregator: Aggregator) -> list[StreamRecord]:
    """The usage ledger's new items in a DynamoDB stream event. One that cannot be read as
    accepted usage is set aside by the aggregator, not left to fail its shard's every retry."""
    from meterline.pipeline.aggregate import StreamRecord

    records = []
    for record in event.get("Records", []):
        if record.get("eventName") != "INSERT":
            continue
        change = record["dynamodb"]
        try:
            usage = usage_from_stream(change["NewImage"])
        except Exception as error:
            aggregator.set_aside(
                change["SequenceNumber"], f"unreadable usage item: {type(error).__name__}: {error}"
            )
            continue
        records.append(StreamRecord(change["SequenceNumber"], usage))
    return records


def msk_records(event: Mapping[str, Any]) -> Iterator[DeliveredRecord]:
    """An MSK trigger event's records in partition order, decoded as the meter reads them.

    A generator, not a list: each record's objects die young, which spares the batch a share of
    Python's garbage collection. A record without a value (a tombstone) is read as empty bytes, to
    be rejected and dead-lettered like any other record that is not an event.
    """
    for records in event["records"].values():
        for record in records:
            key, value = record.get("key"), record.get("value")
            yield DeliveredRecord(
                Delivery(record["topic"], record["partition"], record["offset"]),
                None if key is None else _decoded(key),
                b"" if value is None else _decoded(value),
            )


def _decoded(text: str) -> bytes:
    """Base64 as MSK sends it; text that is not base64 is kept as it is, to be rejected as malformed."""
    try:
        return binascii.a2b_base64(text)
    except (binascii.Error, ValueError):
        return text.encode("utf-8", "backslashreplace") if isinstance(text, str) else bytes(text)


def notified_keys(message_body: str) -> list[str]:
    """The object keys of an S3 event notification delivered through SQS (URL-encoded in the event);
    none for S3's test event, sent when the notification is configured."""
    import json
    from urllib.parse import unquote_plus

    document = json.loads(message_body)
    return [
        unquote_plus(record["s3"]["object"]["key"])
        for record in document.get("Records", [])
        if str(record.get("eventName", "")).startswith("ObjectCreated:")
    ]
