"""One billing cell on this machine, GCP's way: Tansu for Managed Kafka, Google's Firestore
emulator, the Cloud Run function entrypoints and the triggers that drive them — started together,
stopped together (also on Ctrl-C). The driver's side matches LocalCell's, so the demo runs either."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from meterline.topology import AGGREGATES_TABLE, TOPICS, USAGE_EVENTS

from .broker import TansuBroker, create_topics
from .cell import STALL_SECONDS, CellOptions, PipelineStalledError
from .feed import UsageFeed
from .firestore_emulator import FirestoreEmulator
from .gcp_instance import InstanceProcess
from .gcp_runtime import PROJECT, GcpRuntime, GcpSettings, quiet_google_imports
from .gcp_triggers import DocumentCreatedTrigger, PubSubPush, ScheduledDrain, call_close
from .process import ChildProcess, LocalServerError

INSTANCES = {"meter": 2, "aggregate": 1, "rate": 1}
"""Instances (processes) per function. The emulator answers a write in ~4 ms and serves requests
side by side; rate stays at one so two instances never race on a tenant's running charges, and
aggregate at one (max_instance_count 1 on Google Cloud) so two runs never drain the same partition."""
SCHEDULE_SECONDS = 1.0
"""aggregate's schedule, compressed: every second here, every minute on Google Cloud."""


class GcpCell:
    labels = ("metered (Pub/Sub push → meter)", "aggregated (scheduled Kafka drain)")

    def __init__(self, options: CellOptions) -> None:
        self.options = options
        self.children: list[ChildProcess | InstanceProcess] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self._exit = contextlib.ExitStack()
        self.prefix = f"demo-{uuid.uuid4().hex[:8]}-"

    def __enter__(self) -> GcpCell:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._exit.close()

    def describe(self) -> str:
        return (
            f"Kafka {self.bootstrap} · Firestore (emulator) {self.endpoint}"
            f" · collections {self.prefix}* · log {self.options.log}"
        )

    def _start(self) -> None:
        options = self.options
        log: TextIO = self._exit.enter_context(options.log.open("a", buffering=1))
        self._exit.callback(self._stop_children)
        emulator = FirestoreEmulator(options.log.with_suffix(".firestore.log"))
        if options.kafka:
            self.bootstrap = options.kafka
        else:
            broker = TansuBroker(options.log.with_suffix(".broker.log"))
            self._started(broker.child, broker.start)
            self.bootstrap = broker.bootstrap
        self._started(emulator.child, emulator.start)
        self.endpoint = emulator.host
        create_topics(self.bootstrap, TOPICS)
        self._exit.enter_context(contextlib.redirect_stdout(log))
        quiet_google_imports()
        settings = GcpSettings(options.catalog, self.prefix, self.bootstrap, emulator.host)
        start_group_at_end(self.bootstrap, USAGE_EVENTS.name, settings.consumer_group)
        self.runtime = GcpRuntime(settings, INSTANCES)
        self._exit.callback(self._release_clients)
        self.children.extend(self.runtime.processes())  # for the CPU figures; the runtime stops them
        from google.cloud import firestore

        from meterline.adapters.firestore import FirestoreStore

        client = firestore.Client(project=PROJECT)
        self.store = FirestoreStore(client, self.prefix)
        self.feed = UsageFeed(self.bootstrap, USAGE_EVENTS.name)
        self.meter = PubSubPush(
            self.runtime,
            USAGE_EVENTS.name,
            self.bootstrap,
            options.on_failure,
            self.feed.firsts,
            INSTANCES["meter"],
        )
        self.usage_stream = ScheduledDrain(self.runtime, "aggregate", SCHEDULE_SECONDS)
        self.aggregates_stream = DocumentCreatedTrigger(
            self.runtime,
            "rate",
            client,
            f"{self.prefix}{AGGREGATES_TABLE.name}",
            options.on_failure,
            INSTANCES["rate"],
        )
        self._exit.callback(self._stop_threads)
        for name, trigger in (
            ("pubsub-meter", self.meter),
            ("scheduler-aggregate", self.usage_stream),
            ("eventarc-rate", self.aggregates_stream),
        ):
            thread = threading.Thread(target=trigger.run, args=(self.stop,), name=name, daemon=True)
            thread.start()
            self.threads.append(thread)
        if not self.meter.started.wait(30) or self.meter.failure is not None:
            raise LocalServerError(f"the Pub/Sub push bridge did not start: {self.meter.failure}")

    def _started(self, child: ChildProcess, start: Callable[[], None]) -> None:
        self.children.append(child)  # stopped on the way out even if it never became ready
        start()

    def _stop_threads(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _release_clients(self) -> None:
        self.runtime.shutdown()
        if hasattr(self, "feed"):
            del self.feed

    def _stop_children(self) -> None:
        for child in reversed(self.children):
            child.stop()

    # driving ------------------------------------------------------------------------------------

    def close_periods(self, now: str) -> list[str]:
        return call_close(self.runtime, now)

    def drain(self, tick: Callable[[], None]) -> None:
        """Until every acknowledged record went through meter, aggregate committed past all of
        them, and the aggregates collection has no document rate has not been given."""
        ends = dict(self.feed.ends)
        self._wait(lambda: all(self.meter.positions.get(p, 0) >= end for p, end in ends.items()), tick)
        self._wait(lambda: all(self.usage_stream.positions.get(p, 0) >= end for p, end in ends.items()), tick)
        seen = self.aggregates_stream.idle_polls  # a poll in flight may predate aggregate's last write
        self._wait(lambda: self.aggregates_stream.idle_polls >= seen + 2, tick)

    def lag(self) -> dict[int, int]:
        return {
            p: end - self.meter.positions.get(p, self.feed.firsts.get(p, end))
            for p, end in sorted(self.feed.ends.items())
        }

    def _wait(self, done: Callable[[], bool], tick: Callable[[], None]) -> None:
        progress, moved = self._progress(), time.monotonic()
        while not done():
            for trigger in (self.meter, self.usage_stream, self.aggregates_stream):
                if trigger.failure is not None:
                    raise PipelineStalledError(f"a trigger failed: {trigger.failure!r}")
            now = self._progress()
            if now != progress:
                progress, moved = now, time.monotonic()
            elif time.monotonic() - moved > STALL_SECONDS:
                failing = (
                    f" (aggregate: {self.usage_stream.last_error})" if self.usage_stream.last_error else ""
                )
                raise PipelineStalledError(
                    f"no progress for {STALL_SECONDS:.0f}s{failing}: see {self.options.log}"
                )
            tick()
            time.sleep(0.1)
        tick()

    def _progress(self) -> tuple[int, ...]:
        # Not the idle polls: they go on while a failing aggregate leaves nothing for rate to do.
        return (
            self.meter.delivered,
            self.usage_stream.delivered,
            sum(self.usage_stream.positions.values()),
            self.aggregates_stream.delivered,
        )


def start_group_at_end(bootstrap: str, topic: str, group: str) -> None:
    """Commit the group's offsets at the end of each partition before this run produces: a broker
    passed with --kafka keeps other runs' records, whose usage this run's ledger never saw."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = [
            TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1])
            for p in sorted(partitions)
        ]
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()
