"""The publisher port on confluent-kafka (librdkafka): idempotent producer, acks from all replicas."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, Message, Producer


class KafkaPublishError(Exception):
    pass


class KafkaPublisher:
    def __init__(self, config: Mapping[str, Any]) -> None:
        settings = {"enable.idempotence": True, "acks": "all", "linger.ms": 5, **config}
        self._producer = Producer(settings)
        self._failures: list[str] = []

    def publish(
        self, topic: str, key: bytes, value: bytes, headers: Mapping[str, bytes] | None = None
    ) -> None:
        self._producer.produce(
            topic, value=value, key=key, headers=list((headers or {}).items()), on_delivery=self._delivered
        )
        self._producer.poll(0)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(f"{message.topic()}: {error.str()}")

    def flush(self, timeout: float = 30.0) -> None:
        pending = self._producer.flush(timeout)
        failures, self._failures = self._failures, []
        if pending:
            failures.append(f"{pending} messages not acknowledged within {timeout}s")
        if failures:
            raise KafkaPublishError("; ".join(failures[:5]))


def msk_iam_config(bootstrap: str, region: str) -> dict[str, Any]:
    """Client settings for MSK Serverless with IAM auth (SASL OAUTHBEARER, TLS)."""
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    def token(_: str) -> tuple[str, float]:
        value, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        return value, expiry_ms / 1000

    callback: Callable[[str], tuple[str, float]] = token
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "OAUTHBEARER",
        "oauth_cb": callback,
    }
