"""One billing cell on this machine, GCP's way: Tansu for Managed Kafka, Google's Firestore
emulator, the Cloud Run function entrypoints and the triggers that drive them — started together,
stopped together (also on Ctrl-C). The driver's side matches LocalCell's, so the demo runs either."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime

from meterline.topology import AGGREGATES_TABLE, TOPICS, USAGE_EVENTS

from .broker import create_topics
from .feed import UsageFeed
from .firestore_emulator import FirestoreEmulator
from .gcp_runtime import GcpRuntime, local_settings, quiet_google_imports
from .gcp_triggers import DocumentCreatedTrigger, PubSubPush, ScheduledDrain, call_close
from .lifecycle import CellLifecycle

INSTANCES = {"meter": 2, "aggregate": 1, "rate": 1}
"""Instances (processes) per function. The emulator answers a write in ~4 ms and serves requests
side by side; rate stays at one so two instances never race on a tenant's running charges, and
aggregate at one (max_instance_count 1 on Google Cloud) so two runs never drain the same partition."""
SCHEDULE_SECONDS = 1.0
"""aggregate's schedule, compressed: every second here, every minute on Google Cloud."""


class GcpCell(CellLifecycle):
    ledgers, ledger_names = "Firestore (emulator)", "collections"
    labels = ("metered (Pub/Sub push → meter)", "aggregated (scheduled Kafka drain)")
    failed = "a trigger failed: {!r}"

    runtime: GcpRuntime
    meter: PubSubPush
    usage_stream: ScheduledDrain
    aggregates_stream: DocumentCreatedTrigger

    def _start(self) -> None:
        options = self.options
        log = self._open_log()
        emulator = FirestoreEmulator(options.log.with_suffix(".firestore.log"))
        self.bootstrap = self._kafka()
        self.endpoint = self._started(emulator).host
        create_topics(self.bootstrap, TOPICS)
        self._exit.enter_context(contextlib.redirect_stdout(log))
        quiet_google_imports()
        settings = local_settings(options.catalog, self.prefix, self.bootstrap, emulator.host)
        start_group_at_end(self.bootstrap, USAGE_EVENTS.name, settings.consumer_group)
        self.runtime = GcpRuntime(settings, INSTANCES, self.clock)
        self._exit.callback(self._release_clients)
        self.children.extend(self.runtime.processes())  # for the CPU figures; the runtime stops them
        from meterline.adapters.firestore import FirestoreStore, firestore_client

        client = firestore_client(settings.project, settings.database, settings.emulator_host)
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
        self._spawn(self.meter.run, name="pubsub-meter")
        self._spawn(self.usage_stream.run, name="scheduler-aggregate")
        self._spawn(self.aggregates_stream.run, name="eventarc-rate")
        self._await_start(self.meter, "the Pub/Sub push bridge")

    # driving ------------------------------------------------------------------------------------

    def close_periods(self, now: str) -> list[str]:
        """The schedule calling close at ``now`` (the cell's clock set to it): the periods it closed."""
        self.clock.set(datetime.fromisoformat(now))
        return call_close(self.runtime)

    def drain(self, tick: Callable[[], None]) -> None:
        """Until every acknowledged record went through meter, aggregate committed past all of
        them, and the aggregates collection has no document rate has not been given."""
        ends = dict(self.feed.ends)
        self._wait_past(self.meter, ends, tick)
        self._wait_past(self.usage_stream, ends, tick)
        seen = self.aggregates_stream.idle_polls  # a poll in flight may predate aggregate's last write
        self._wait(lambda: self.aggregates_stream.idle_polls >= seen + 2, tick)

    def _progress(self) -> tuple[int, ...]:
        # Not the idle polls: they go on while a failing aggregate leaves nothing for rate to do.
        return (
            self.meter.delivered,
            self.usage_stream.delivered,
            sum(self.usage_stream.positions.values()),
            self.aggregates_stream.delivered,
        )

    def _stalled_because(self) -> str:
        return f" (aggregate: {self.usage_stream.last_error})" if self.usage_stream.last_error else ""


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
