"""The GCP triggers, locally: what brings each function its events.

- ``PubSubPush``: Kafka records to meter, one CloudEvent per record, as the Kafka Connect Pub/Sub
  sink and an Eventarc push subscription would deliver them (a direct bridge: no Pub/Sub emulator
  between). Records of one partition go to one instance, in offset order — what an ordered
  subscription keyed by partition gives; Eventarc itself does not order, so there two conflicting
  events of a tenant could be metered in either order.
- ``DocumentCreatedTrigger``: Firestore ``document.v1.created`` events for one collection (rate's
  on aggregates). The emulator has no Eventarc, so a poller lists the collection and announces
  each document it has not seen before (its create time is the event's), one event per document.
- ``ScheduledDrain``: Cloud Scheduler calling aggregate over HTTP, every second here (every minute
  on Google Cloud); aggregate reads ``usage.events`` itself and answers with what it committed.

The first two deliver again when the function raises (``MAX_ATTEMPTS`` in all, backing off), then
write the event to the on-failure file — Pub/Sub's dead-letter topic — and move on. A failed
scheduled run is not retried: the next tick goes on from the committed offsets.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer

from .esm import KafkaRecord, assign_new_partitions
from .gcp_instance import InstanceError
from .gcp_runtime import GcpRuntime, document_created_event, pubsub_push_event

MAX_ATTEMPTS = 5
"""Pub/Sub's least max_delivery_attempts with a dead-letter topic."""
FIRST_BACKOFF_SECONDS = 0.1
POLL_SECONDS = 0.5
READ_BATCH = 300


@dataclass(frozen=True, slots=True)
class Job:
    what: str
    request: Callable[[], Any]
    """The CloudEvent, built afresh for each attempt."""
    dead_letter: Callable[[], dict[str, Any]]
    """What the dead-letter record keeps of the event."""
    partition: int = 0
    offset: int = -1


class _Deliveries:
    """Instances of one function, each taking its own queue one request at a time."""

    def __init__(self, runtime: GcpRuntime, job: str, instances: int, on_failure: Path) -> None:
        self.runtime = runtime
        self.job = job
        self.on_failure = on_failure
        self.queues: list[queue.Queue[Job]] = [queue.Queue() for _ in range(instances)]
        self.delivered = self.retries = self.failed_batches = 0
        self.failure: BaseException | None = None
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return self._pending

    def enqueue(self, instance: int, job: Job) -> None:
        with self._lock:
            self._pending += 1
        self.queues[instance].put(job)

    def threads(self, stop: threading.Event, name: str) -> list[threading.Thread]:
        return [
            threading.Thread(target=self._serve, args=(index, stop), name=f"{name}-{index}", daemon=True)
            for index in range(len(self.queues))
        ]

    def _serve(self, instance: int, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    job = self.queues[instance].get(timeout=0.1)
                except queue.Empty:
                    continue
                self._deliver(instance, job, stop)
                with self._lock:
                    self._pending -= 1
                    self.delivered += 1
        except BaseException as error:  # surfaced by the driver
            self.failure = error

    def _deliver(self, instance: int, job: Job, stop: threading.Event) -> None:
        error: Exception | None = None
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                with self._lock:
                    self.retries += 1
                stop.wait(FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1))
            try:
                self.runtime.deliver(self.job, instance, job.request())
                self.delivered_one(job)
                return
            except Exception as raised:
                error = raised
        with self._lock:
            self.failed_batches += 1
            entry = {
                "timestamp": datetime.now(UTC).isoformat(),
                "function": f"meterline-{self.job}",
                "deliveryAttempts": MAX_ATTEMPTS,
                "what": job.what,
                "error": f"{type(error).__name__}: {error}",
                "event": job.dead_letter(),
            }
            with self.on_failure.open("ab") as out:
                out.write(orjson.dumps(entry, default=str) + b"\n")
        self.delivered_one(job)

    def delivered_one(self, job: Job) -> None:
        """Called once per event, delivered or dead-lettered."""


class PubSubPush(_Deliveries):
    def __init__(
        self,
        runtime: GcpRuntime,
        topic: str,
        bootstrap: str,
        on_failure: Path,
        starting_offsets: Mapping[int, int],
        instances: int,
    ) -> None:
        """``starting_offsets``: per partition, where this run's records begin; read as it fills."""
        super().__init__(runtime, "meter", instances, on_failure)
        self.topic = topic
        self.bootstrap = bootstrap
        self.starting_offsets = starting_offsets
        self.positions: dict[int, int] = {}
        """Per partition, the next offset to deliver: all before it were acknowledged (or dead-lettered)."""
        self.started = threading.Event()

    def run(self, stop: threading.Event) -> None:
        workers = self.threads(stop, "pubsub-meter")
        for worker in workers:
            worker.start()
        try:
            consumer = Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": "meterline-pubsub-sink",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 100,
                }
            )
            try:
                consumer.assign([])
                self.started.set()
                self._forward(consumer, stop)
            finally:
                consumer.close()
        except BaseException as error:
            self.failure = error
            self.started.set()
        for worker in workers:
            worker.join(timeout=30)

    def _forward(self, consumer: Consumer, stop: threading.Event) -> None:
        while not stop.is_set():
            assign_new_partitions(consumer, self.topic, self.starting_offsets, self.positions)
            for message in consumer.consume(num_messages=500, timeout=0.1):
                if message.error() is None:
                    record = KafkaRecord.of(message)
                    self.enqueue(record.partition % len(self.queues), _push_job(record))

    def delivered_one(self, job: Job) -> None:
        self.positions[job.partition] = job.offset + 1  # one instance per partition, in offset order


def _push_job(record: KafkaRecord) -> Job:
    def request() -> Any:
        return pubsub_push_event(
            record.topic, record.partition, record.offset, record.key, record.value, record.timestamp
        )

    def dead_letter() -> dict[str, Any]:
        event = request()
        return {"attributes": dict(event.get_attributes()), "data": event.data}

    return Job(
        f"{record.topic}@{record.partition}:{record.offset}",
        request,
        dead_letter,
        record.partition,
        record.offset,
    )


class DocumentCreatedTrigger(_Deliveries):
    def __init__(
        self, runtime: GcpRuntime, job: str, client: Any, collection: str, on_failure: Path, instances: int
    ) -> None:
        super().__init__(runtime, job, instances, on_failure)
        self.client = client
        self.collection = client.collection(collection)
        self.seen: set[str] = set()
        self.announced = 0
        self.idle_polls = 0
        """Polls that found nothing new while nothing was in flight."""
        self._next = 0

    def run(self, stop: threading.Event) -> None:
        workers = self.threads(stop, f"eventarc-{self.job}")
        for worker in workers:
            worker.start()
        try:
            while not stop.is_set():
                idle = self.pending == 0
                if not self.poll() and idle:
                    self.idle_polls += 1
                stop.wait(POLL_SECONDS if idle else POLL_SECONDS / 5)
                while self.pending > len(self.queues) and not stop.is_set():
                    stop.wait(0.05)  # let the instances catch up before listing again
        except BaseException as error:
            self.failure = error
        for worker in workers:
            worker.join(timeout=30)

    def poll(self) -> int:
        """Announce the documents created since the last poll; how many there were. The listing
        carries names only: only the new documents are read whole."""
        names = [
            snapshot.reference
            for snapshot in self.collection.select([]).stream()
            if snapshot.reference._document_path not in self.seen
        ]
        created = [
            snapshot
            for start in range(0, len(names), READ_BATCH)
            for snapshot in self.client.get_all(names[start : start + READ_BATCH])
            if snapshot.exists  # one deleted since it was listed is left out: nothing could read it
        ]
        for snapshot in sorted(created, key=lambda snapshot: snapshot.create_time):
            name = snapshot.reference._document_path
            self.seen.add(name)
            self.enqueue(self._next % len(self.queues), _created_job(name, snapshot))
            self._next += 1
        self.announced += len(created)
        return len(created)


def _created_job(name: str, snapshot: Any) -> Job:
    fields: dict[str, Any] = snapshot.to_dict() or {}
    created: datetime = snapshot.create_time

    def request() -> Any:
        return document_created_event(name, fields, created)

    def dead_letter() -> dict[str, Any]:
        return {"document": name, "createTime": created.isoformat()}

    return Job(name, request, dead_letter)


def call_close(runtime: GcpRuntime) -> list[str]:
    """Cloud Scheduler's call: the closed periods, or an error for a status other than 200."""
    body, status = runtime.call_close()
    if status != 200:
        raise RuntimeError(f"close answered {status}: {body}")
    return [str(period) for period in body["closed"]]


class ScheduledDrain:
    """Cloud Scheduler's job for aggregate: a POST to its one instance every ``period`` seconds,
    the next one only after the last answered (the instance takes one request at a time)."""

    def __init__(self, runtime: GcpRuntime, job: str, period: float) -> None:
        self.runtime = runtime
        self.job = job
        self.period = period
        self.delivered = 0
        """Usage records the runs applied."""
        self.retries = self.failed_batches = self.runs = 0
        self.positions: dict[int, int] = {}
        """Per partition, the offset the job last committed: every record before it is settled."""
        self.last_error = ""
        self.failure: BaseException | None = None

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.tick()
                stop.wait(self.period)
        except BaseException as error:  # surfaced by the driver
            self.failure = error

    def tick(self) -> None:
        try:
            body, status = self.runtime.post(self.job, 0, {})
        except InstanceError as error:  # the run failed (500): what it committed before stays
            self.retries += 1
            self.last_error = str(error)
            return
        finally:
            self.runs += 1
        if status != 200:
            raise RuntimeError(f"{self.job} answered {status}: {body}")
        self.delivered += int(body["applied"])
        self.positions.update((int(p), int(offset)) for p, offset in body["committed"].items())
