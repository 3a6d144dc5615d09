"""The MSK event source mapping, locally: Kafka records to a function as ``aws:kafka`` events.

As Lambda does: a batch is up to the function's batch size, or what arrived within its batching
window; records are grouped by "topic-partition", keys and values base64, headers as byte arrays.
A response's ``batchItemFailures`` send each failed partition back to its lowest failed offset
(an error from the function sends the whole batch back); after ``max_retries`` the batch is
written to the on-failure destination (a file here, an S3 bucket on AWS) and skipped.

The mapping starts each partition at the first offset this run produced there (StartingPosition
LATEST), so that a broker the user already runs is not replayed; it learns those offsets from the
producer's acknowledgements, because Tansu's high watermarks are not reliable (NOTES.md).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Message, TopicPartition

from meterline.topology import Function, Topic

from .runtime import Runtime, retries_exhausted


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, message: Message) -> KafkaRecord:
        _, timestamp = message.timestamp()
        return cls(
            message.topic() or "",
            message.partition() or 0,
            message.offset() or 0,
            timestamp,
            message.key(),
            message.value() or b"",
            _headers(message.headers()),
        )

    def to_lambda(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp,
            "timestampType": "CREATE_TIME",
            "value": base64.b64encode(self.value).decode(),
            "headers": [{name: list(value)} for name, value in self.headers],
        }
        if self.key is not None:
            record["key"] = base64.b64encode(self.key).decode()
        return record


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    pairs = raw.items() if isinstance(raw, dict) else raw or ()
    return tuple((name, value.encode() if isinstance(value, str) else value or b"") for name, value in pairs)


def assign_new_partitions(
    consumer: Consumer, topic: str, starting_offsets: Mapping[int, int], positions: dict[int, int]
) -> list[int]:
    """Assign the partitions this run has produced to since the last call, each from the first
    offset produced there, and enter that offset in ``positions``; the partitions newly assigned."""
    starting = dict(starting_offsets)  # a copy: the producer's callbacks add to it
    new = [TopicPartition(topic, p, o) for p, o in starting.items() if p not in positions]
    if new:
        positions.update((tp.partition, tp.offset) for tp in new)
        consumer.incremental_assign(new)
    return [tp.partition for tp in new]


def kafka_event(records: Iterable[KafkaRecord], bootstrap: str) -> dict[str, Any]:
    by_partition: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_partition.setdefault(f"{record.topic}-{record.partition}", []).append(record.to_lambda())
    event = {
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:local:000000000000:cluster/meterline-local/local",
        "bootstrapServers": bootstrap,
        "records": by_partition,
    }
    return orjson.loads(orjson.dumps(event))  # type: ignore[no-any-return]  # what crosses the wire


class KafkaEventSourceMapping:
    def __init__(
        self,
        runtime: Runtime,
        function: Function,
        topic: Topic,
        bootstrap: str,
        on_failure: Path,
        starting_offsets: Mapping[int, int],
        max_retries: int = 3,
    ) -> None:
        """``starting_offsets``: per partition, where this run's records begin; read as it fills."""
        self.runtime = runtime
        self.starting_offsets = starting_offsets
        self.function = function
        self.topic = topic
        self.bootstrap = bootstrap
        self.on_failure = on_failure
        self.max_retries = max_retries
        self.positions: dict[int, int] = {}
        """Per partition, the next offset to deliver: all before it were handled (or given up)."""
        self.started = threading.Event()
        self.invocations = self.retries = self.failed_batches = self.delivered = 0
        self.failure: BaseException | None = None

    def run(self, stop: threading.Event) -> None:
        try:
            self._run(stop)
        except BaseException as error:  # surfaced by the driver
            self.failure = error
            self.started.set()

    def _run(self, stop: threading.Event) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"meterline-{self.function.job}-esm",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
                "enable.partition.eof": False,
            }
        )
        try:
            consumer.assign([])
            self.started.set()
            self._poll(consumer, stop)
        finally:
            consumer.close()

    def _poll(self, consumer: Consumer, stop: threading.Event) -> None:
        size, window = self.function.batch_size, self.function.batching_window_seconds
        pending: list[KafkaRecord] = []
        first_at = 0.0
        while not stop.is_set():
            assign_new_partitions(consumer, self.topic.name, self.starting_offsets, self.positions)
            for message in consumer.consume(num_messages=size - len(pending), timeout=0.1):
                if message.error() is None:
                    if not pending:
                        first_at = time.monotonic()
                    pending.append(KafkaRecord.of(message))
            if pending and (len(pending) >= size or time.monotonic() - first_at >= window):
                self.deliver(pending)
                pending = []

    def deliver(self, records: list[KafkaRecord]) -> None:
        batch = records
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.retries += 1
            failed_from = self._invoke(batch)
            batch = [r for r in batch if r.offset >= failed_from.get(r.partition, r.offset + 1)]
            if not batch:
                break
        else:
            self._give_up(batch, self.max_retries + 1)
        self.delivered += len(records)
        for record in records:
            self.positions[record.partition] = max(self.positions[record.partition], record.offset + 1)

    def _invoke(self, batch: list[KafkaRecord]) -> dict[int, int]:
        """The lowest failed offset of each partition with failures."""
        self.invocations += 1
        try:
            response = self.runtime.invoke(
                self.function.job, kafka_event(batch, self.bootstrap), self.function.timeout_seconds
            )
        except Exception:
            lowest: dict[int, int] = {}
            for record in batch:
                lowest[record.partition] = min(lowest.get(record.partition, record.offset), record.offset)
            return lowest
        failed: dict[int, int] = {}
        for failure in response.get("batchItemFailures") or ():
            identifier = failure["itemIdentifier"]
            partition = int(str(identifier["partition"]).rpartition("-")[2])
            failed[partition] = min(
                failed.get(partition, int(identifier["offset"])), int(identifier["offset"])
            )
        return failed

    def _give_up(self, batch: list[KafkaRecord], invokes: int) -> None:
        """What Lambda sends an on-failure destination for a Kafka batch, one line per partition."""
        by_partition: dict[int, list[KafkaRecord]] = {}
        for record in batch:
            by_partition.setdefault(record.partition, []).append(record)
        with self.on_failure.open("ab") as out:
            for partition, records in sorted(by_partition.items()):
                self.failed_batches += 1
                entry = {
                    "version": "1.0",
                    "timestamp": datetime.now(UTC).isoformat(),
                    "requestContext": retries_exhausted(self.function.job, invokes),
                    "KafkaBatchInfo": {
                        "batchSize": len(records),
                        "topicPartition": f"{self.topic.name}-{partition}",
                        "firstOffset": records[0].offset,
                        "lastOffset": records[-1].offset,
                    },
                    "payload": kafka_event(records, self.bootstrap),
                }
                out.write(orjson.dumps(entry) + b"\n")
