"""aggregate reading ``usage.events`` itself, in its own consumer group, the way Lambda consumes
a stream: per partition, a batch of up to ``batch_size`` records starting at the committed offset,
handed to the aggregator as one batch, and the offset committed only once the aggregator's
transaction(s) for the batch succeeded. A run stops taking new batches once its time budget is
spent; the next scheduled run goes on from the committed offsets.

Each record is joined with what meter wrote to the usage ledger (``usage_join``): the record whose
delivery created a usage item brings that usage, a rejected or duplicate record brings nothing,
and a valid record meter has not reached yet ends its partition's batch just before it — only the
records before it are applied and committed past, and the next run starts at it again.

Why this is exactly-once in effect, although Kafka's commit and the ledger's transaction are two
writes:

- A record counts once it is in a committed aggregator transaction. That transaction creates a
  batch marker keyed by the batch's first accepted record (sequence ``partition << 64 | offset``,
  so partitions never share a marker), holding its last.
- A crash before the transaction leaves nothing; the offset was not committed, so the batch is
  read again. A crash after it but before the offset commit also has the batch read again from
  the same committed offset: its first accepted record is the same, the marker is found, and the
  aggregator skips every record the marker covers (and applies only what lies beyond it).
- That needs the re-read batch to be no shorter than the committed one. A batch ends at
  ``batch_size`` records, at the end of the partition as the broker reports it (partition EOF),
  or before the first record not yet metered — all three only move forward in time for a given
  start, and a run never cuts a batch short for its time budget. So a re-read batch covers the
  committed one, and no later batch starts inside a committed range, where no marker is keyed.
- Offsets only move forward past records that are applied, or that meter decided bring no usage
  (rejected, duplicate); a record meter has not reached is never committed past.

What it assumes: one run at a time per consumer group (the function runs on one instance, and the
schedule's period is longer than the time budget). Two overlapping runs stay correct while their
batches of a partition start at the same offset (a losing transaction finds the winner's marker),
but a run whose batch is shorter than a concurrent run's committed one would commit an offset
inside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_STORED, Consumer, KafkaError, Message, TopicPartition

from meterline.adapters.usage_join import (
    NotYetMeteredError,
    UnreadableUsageError,
    accepted_usage,
    stream_sequence,
)
from meterline.metering import Metering
from meterline.pipeline.aggregate import Aggregator, StreamRecord
from meterline.pipeline.processing import AggregateProcessor
from meterline.ports import Store
from meterline.records import AcceptedUsage, Delivery

POLL_SECONDS = 0.2
IDLE_SECONDS = 3.0
"""A run ends when the broker sent nothing, not even an end of partition, for this long."""
FETCH_MESSAGES = 500


class KafkaReadError(RuntimeError):
    """The broker answered a fetch with an error other than the end of a partition."""


@dataclass(frozen=True, slots=True)
class TopicRecord:
    delivery: Delivery
    value: bytes


@dataclass
class DrainReport:
    records: int = 0
    """Records committed past: applied, rejected or duplicate."""
    applied: int = 0
    """Accepted usage records the aggregator applied (none twice)."""
    batches: int = 0
    committed: dict[int, int] = field(default_factory=dict)
    """Per partition moved this run, the offset committed: the next record to read."""
    waiting: dict[int, int] = field(default_factory=dict)
    """Per partition stopped short, the offset of the first record meter has not reached."""
    dead_lettered: int = 0
    """Records set aside because they cannot be aggregated (see ``Aggregator.set_aside``)."""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "applied": self.applied,
            "batches": self.batches,
            "committed": {str(p): offset for p, offset in sorted(self.committed.items())},
            "waiting": {str(p): offset for p, offset in sorted(self.waiting.items())},
            "dead_lettered": self.dead_lettered,
            "seconds": round(self.seconds, 3),
        }


class KafkaDrain:
    """One scheduled run over every partition of ``topic``. The consumer is assigned (not
    subscribed) with its group's committed offsets, ``enable.partition.eof`` on and auto-commit off."""

    def __init__(
        self,
        consumer: Consumer,
        topic: str,
        aggregator: Aggregator,
        store: Store,
        metering: Metering,
        *,
        batch_size: int,
        budget_seconds: float,
        join_threads: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self.aggregator = aggregator
        self.store = store
        self.metering = metering
        self.batch_size = batch_size
        self.budget_seconds = budget_seconds
        self.join_threads = join_threads
        self.clock = clock

    def run(self) -> DrainReport:
        started = self.clock()
        deadline = started + self.budget_seconds
        report = DrainReport()
        dead_before = self.aggregator.dead_lettered
        partitions = self.partitions()
        self.consumer.assign([TopicPartition(self.topic, p, OFFSET_STORED) for p in partitions])
        buffers: dict[int, list[TopicRecord]] = {p: [] for p in partitions}
        finished: set[int] = set()
        heard = self.clock()
        with ThreadPoolExecutor(self.join_threads, thread_name_prefix="usage-join") as pool:
            while len(finished) < len(partitions) and self.clock() < deadline:
                messages = self.consumer.consume(FETCH_MESSAGES, POLL_SECONDS)
                if messages:
                    heard = self.clock()
                elif self.clock() - heard > IDLE_SECONDS:
                    break
                for message in messages:
                    partition = self._take(pool, message, buffers, finished, report)
                    if partition is not None:
                        finished.add(partition)
                        self.consumer.pause([TopicPartition(self.topic, partition)])
        report.seconds = self.clock() - started
        report.dead_lettered = self.aggregator.dead_lettered - dead_before
        return report

    def _take(
        self,
        pool: ThreadPoolExecutor,
        message: Message,
        buffers: dict[int, list[TopicRecord]],
        finished: set[int],
        report: DrainReport,
    ) -> int | None:
        """Add the message to its partition's batch, settling the batch when it is full or at the
        partition's end; the partition if it is done for this run."""
        partition = message.partition()
        error = message.error()
        if error is not None and error.code() != KafkaError._PARTITION_EOF:
            raise KafkaReadError(f"{self.topic} partition {partition}: {error.str()}")
        if partition is None or partition not in buffers or partition in finished:
            return None
        buffer = buffers[partition]
        if error is not None:  # the end of the partition: what arrives after it is the next run's
            if buffer:
                self.settle(pool, partition, buffer, report)
            return partition
        delivery = Delivery(self.topic, partition, message.offset() or 0)
        buffer.append(TopicRecord(delivery, message.value() or b""))
        if len(buffer) >= self.batch_size and not self.settle(pool, partition, buffer, report):
            return partition
        return None

    def partitions(self) -> list[int]:
        metadata = self.consumer.list_topics(self.topic, timeout=10)
        found = metadata.topics.get(self.topic)
        if found is None or found.error is not None or not found.partitions:
            raise KafkaReadError(f"topic {self.topic} is not on the cluster: {found and found.error}")
        return sorted(found.partitions)

    def settle(
        self, pool: ThreadPoolExecutor, partition: int, batch: list[TopicRecord], report: DrainReport
    ) -> bool:
        """Apply one partition's batch and commit past what it settled; False if it stopped at a
        record meter has not reached (the partition waits for the next run). Empties ``batch``."""
        joins = [pool.submit(accepted_usage, self.store, self.metering, record) for record in batch]
        settled, accepted, stopped = self._joined(batch, joins)
        if stopped is not None:
            report.waiting[partition] = stopped
        batch.clear()
        if not settled:
            return stopped is None
        if accepted:
            report.applied += AggregateProcessor(self.aggregator).run(accepted)
        end = settled[-1].delivery.offset + 1
        self.consumer.commit(offsets=[TopicPartition(self.topic, partition, end)], asynchronous=False)
        report.committed[partition] = end
        report.records += len(settled)
        report.batches += 1
        return stopped is None

    def _joined(
        self, batch: Sequence[TopicRecord], joins: Sequence[Future[AcceptedUsage | None]]
    ) -> tuple[list[TopicRecord], list[StreamRecord], int | None]:
        """The records before the first one not metered yet, their accepted usage, and that
        record's offset (None if every record is metered). Errors surface in partition order."""
        accepted: list[StreamRecord] = []
        for index, (record, join) in enumerate(zip(batch, joins, strict=True)):
            sequence = stream_sequence(record.delivery)
            try:
                usage = join.result()
            except NotYetMeteredError:
                for later in joins[index:]:
                    later.cancel()
                return list(batch[:index]), accepted, record.delivery.offset
            except UnreadableUsageError as error:
                self.aggregator.set_aside(
                    sequence, f"unreadable usage item: {error}", None, str(record.delivery)
                )
                continue
            if usage is not None:
                accepted.append(StreamRecord(sequence, usage))
        return list(batch), accepted, None
