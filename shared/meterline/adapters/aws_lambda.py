"""The AWS Lambda functions' adapter: their settings (the jobs on DynamoDB and MSK) and the decoding
of their triggers. The handlers pass ``os.environ`` in; nothing here reads the environment itself.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from meterline.pipeline.meter import DeliveredRecord
from meterline.ports import Item, Publisher, Store
from meterline.records import AcceptedUsage, Delivery
from meterline.settings import CellSettings, KafkaAuth, env

if TYPE_CHECKING:  # the meter function does not load the aggregator
    from meterline.pipeline.aggregate import Aggregator, StreamRecord


@dataclass(frozen=True, kw_only=True)
class AwsSettings(CellSettings):
    """What a Lambda function of the cell reads from its environment."""

    cloud: ClassVar[str] = "aws"

    region: str = env("AWS_REGION", "us-east-1", platform=True)
    dynamodb_endpoint: str = env("METERLINE_DYNAMODB_ENDPOINT", "")
    """A DynamoDB endpoint other than AWS's (a moto server): for clients of a local cell only."""

    def open_store(self) -> Store:
        import boto3

        from meterline.adapters.dynamodb import DynamoStore

        client = boto3.client(
            "dynamodb", region_name=self.region, endpoint_url=self.dynamodb_endpoint or None
        )
        return DynamoStore(client, self.table_prefix)

    def open_publisher(self) -> Publisher:
        from meterline.adapters.kafka import KafkaPublisher, msk_iam_config

        bootstrap = self.require_kafka()
        if self.kafka_auth is KafkaAuth.IDENTITY:
            return KafkaPublisher(msk_iam_config(bootstrap, self.region))
        return KafkaPublisher({"bootstrap.servers": bootstrap})


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
