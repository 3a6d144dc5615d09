"""The publisher port on SNS: what the billing home announces (spend alerts, issued invoices and
amendments) goes to one SNS topic per meterline topic, the message the JSON document, its key a
message attribute. The home runs outside any VPC and has no broker of its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from meterline.ports import StoreError

SnsClient = Any
"""boto3's SNS client (no type stubs for it are installed)."""


class PublishError(StoreError):
    """SNS refused or could not take a message: the job raises and its schedule runs it again."""


class SnsPublisher:
    def __init__(self, client: SnsClient, topics: Mapping[str, str]) -> None:
        """``topics``: meterline topic name → its SNS topic's ARN."""
        self.client = client
        self.topics = dict(topics)

    def publish(
        self, topic: str, key: bytes, value: bytes, headers: Mapping[str, bytes] | None = None
    ) -> None:
        arn = self.topics.get(topic)
        if arn is None:
            named = ", ".join(sorted(self.topics))
            raise PublishError(f"no SNS topic for {topic}: METERLINE_NOTIFICATION_TOPICS names {named}")
        attributes = {
            name: {"DataType": "String", "StringValue": data.decode("utf-8", "replace")}
            for name, data in {"key": key, **(headers or {})}.items()
        }
        try:
            self.client.publish(TopicArn=arn, Message=value.decode(), MessageAttributes=attributes)
        except (ClientError, BotoCoreError) as error:
            raise PublishError(f"{topic}: SNS publish to {arn} failed: {error}") from None

    def flush(self) -> None:
        """Each publish is acknowledged when it returns: nothing is buffered."""
