"""The Azure triggers, locally: what brings each function of the app its invocations.

- ``EventHubsTrigger``: the Event Hubs trigger's event processor, reading the hub through the Kafka
  endpoint in the function's consumer group. Each partition is pumped on its own: a batch of up to
  ``MAX_BATCH`` events of ONE partition per invocation, the next batch only after this one is
  checkpointed. A function that raises gets the same batch again after its retry policy's delay
  (``fixed_delay``, compressed by ``RETRY_COMPRESSION``); the checkpoint moves past a batch only
  once it succeeded. The deployed policy retries without end; here a batch still failing after
  ``GIVE_UP_SECONDS`` stops the run with its error, instead of spinning. A function without a
  retry policy is checkpointed past a failed batch, as Azure does (the batch is written to the
  on-failure file, since nothing else would show it).
- ``TimerTrigger``: a timer function fired by the driver, one firing at a time, as Azure's
  singleton timers are.

Each consumer group starts each partition at the first offset this run produced there, learnt
from the producer's acknowledgements (Tansu's high watermarks are not reliable: NOTES.md).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import orjson
from confluent_kafka import Consumer

from .azure_app import IndexedFunction
from .azure_runtime import AzureRuntime, hub_batch, timer_request
from .esm import KafkaRecord, assign_new_partitions

MAX_BATCH = 100
"""host.json ``extensions.eventHubs.maxEventBatchSize``: the extension's default."""
RETRY_COMPRESSION = 20
"""The retry delay runs 20 times faster here (10 s → 0.5 s): a local month takes minutes."""
GIVE_UP_SECONDS = 30.0


class EventHubsTrigger:
    def __init__(
        self,
        runtime: AzureRuntime,
        function: IndexedFunction,
        bootstrap: str,
        on_failure: Path,
        starting_offsets: Mapping[int, int],
    ) -> None:
        """``starting_offsets``: per partition, where this run's records begin; read as it fills."""
        self.runtime = runtime
        self.function = function
        self.hub = str(function.trigger["eventHubName"])
        self.consumer_group = str(function.trigger.get("consumerGroup") or "$Default")
        self.bootstrap = bootstrap
        self.on_failure = on_failure
        self.starting_offsets = starting_offsets
        self.positions: dict[int, int] = {}
        """Per partition, the checkpoint: the next sequence number to hand the function."""
        self.started = threading.Event()
        self.delivered = self.retries = self.failed_batches = 0
        self.failure: BaseException | None = None
        self._buffers: dict[int, deque[KafkaRecord]] = {}
        self._arrived = threading.Condition()
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return f"{self.hub}/{self.consumer_group} → {self.function.name}"

    def run(self, stop: threading.Event) -> None:
        pumps: list[threading.Thread] = []
        try:
            consumer = Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": f"meterline-azure-{self.consumer_group}",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 100,
                }
            )
            try:
                consumer.assign([])
                self.started.set()
                self._receive(consumer, stop, pumps)
            finally:
                consumer.close()
        except BaseException as error:  # surfaced by the driver
            self.failure = error
            self.started.set()
        with self._arrived:
            self._arrived.notify_all()
        for pump in pumps:
            pump.join(timeout=30)

    def _receive(self, consumer: Consumer, stop: threading.Event, pumps: list[threading.Thread]) -> None:
        while not stop.is_set() and self.failure is None:
            for partition in assign_new_partitions(consumer, self.hub, self.starting_offsets, self.positions):
                self._buffers[partition] = deque()
                pump = threading.Thread(
                    target=self._pump,
                    args=(partition, stop),
                    name=f"eventhubs-{self.function.name}-{partition}",
                    daemon=True,
                )
                pump.start()
                pumps.append(pump)
            messages = [m for m in consumer.consume(num_messages=1000, timeout=0.1) if m.error() is None]
            if messages:
                with self._arrived:
                    for message in messages:
                        record = KafkaRecord.of(message)
                        self._buffers[record.partition].append(record)
                    self._arrived.notify_all()

    def _pump(self, partition: int, stop: threading.Event) -> None:
        """One partition's processor: a batch, its invocation (again while it fails), the checkpoint."""
        buffer = self._buffers[partition]
        try:
            while not stop.is_set() and self.failure is None:
                with self._arrived:
                    if not buffer:
                        self._arrived.wait(0.2)
                        continue
                    batch = [buffer.popleft() for _ in range(min(MAX_BATCH, len(buffer)))]
                self.deliver(batch, stop)
        except BaseException as error:
            traceback.print_exception(error, file=sys.stdout)  # the cell sends stdout to its log
            self.failure = error

    def deliver(self, batch: list[KafkaRecord], stop: threading.Event) -> None:
        """Invoke the function with one partition's batch until it is done with it, then checkpoint."""
        if self._invoke(batch, stop):
            with self._lock:
                self.positions[batch[0].partition] = batch[-1].offset + 1
                self.delivered += len(batch)

    def _invoke(self, batch: list[KafkaRecord], stop: threading.Event) -> bool:
        """Invoke until the function succeeds or the retry policy runs out; False when stopped first."""
        retry = self.function.retry
        first_failure: float | None = None
        attempt = 0
        while not stop.is_set():
            try:
                self.runtime.call(self.function.name, hub_batch(batch, self.consumer_group))
                return True
            except Exception as error:
                print(f"{self.function.name}: {type(error).__name__}: {error}", flush=True)
                now = time.monotonic()
                first_failure = first_failure or now
                if retry is None or 0 <= retry.max_retries <= attempt:
                    self._give_up(batch, attempt + 1, error)
                    return True
                if now - first_failure > GIVE_UP_SECONDS:
                    where = f"{self.hub} partition {batch[0].partition} from {batch[0].offset}"
                    raise RuntimeError(
                        f"{self.function.name} kept failing on {where} for {GIVE_UP_SECONDS:.0f}s"
                        f" ({attempt + 1} attempts): {type(error).__name__}: {error}"
                    ) from None
            attempt += 1
            with self._lock:
                self.retries += 1
            stop.wait(retry.delay.total_seconds() / RETRY_COMPRESSION)
        return False

    def _give_up(self, batch: list[KafkaRecord], attempts: int, error: Exception) -> None:
        with self._lock:
            self.failed_batches += 1
            entry = {
                "timestamp": datetime.now(UTC).isoformat(),
                "function": self.function.name,
                "attempts": attempts,
                "partition": f"{self.hub}/{batch[0].partition}",
                "sequenceNumbers": [batch[0].offset, batch[-1].offset],
                "error": f"{type(error).__name__}: {error}",
            }
            with self.on_failure.open("ab") as out:
                out.write(orjson.dumps(entry) + b"\n")


class TimerTrigger:
    def __init__(self, runtime: AzureRuntime, function: IndexedFunction) -> None:
        self.runtime = runtime
        self.function = function
        self.schedule = str(function.trigger["schedule"])
        self.delivered = self.retries = self.failed_batches = 0
        self.failure: BaseException | None = None
        self._singleton = threading.Lock()

    def fire(self) -> None:
        """One firing; what the function raised is raised here too (Azure logs it; the next
        firing comes on schedule)."""
        with self._singleton:
            try:
                self.runtime.call(self.function.name, timer_request())
            except Exception:
                self.failed_batches += 1
                raise
            finally:
                self.delivered += 1

    def run(self, stop: threading.Event, every_seconds: float) -> None:
        """Fire every ``every_seconds`` until stopped: the schedule, compressed."""
        while not stop.wait(every_seconds):
            try:
                self.fire()
            except Exception as error:
                traceback.print_exception(error, file=sys.stdout)  # the cell sends stdout to its log
                self.failure = error
                return
