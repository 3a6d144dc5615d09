"""aggregate on GCP: the real Cloud Run entrypoint, called as Cloud Scheduler calls it, draining
``usage.events`` on a real Kafka-protocol broker (Tansu) in its consumer group; the ledger is the
in-memory store in place of Firestore, written by the real meter entrypoint."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import flask
import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from werkzeug.test import EnvironBuilder

from meterline.adapters.gcp_functions import GcpSettings
from meterline.adapters.kafka_drain import KafkaDrain
from meterline.adapters.memory import MemoryPublisher, StreamingMemoryStore
from meterline.bootstrap import Jobs, bootstrap
from meterline.catalog import load_catalog
from meterline.local.broker import TansuBroker, create_topics
from meterline.local.feed import subject_of
from meterline.pipeline.invoices import invoices_by_period
from meterline.ports import Item
from meterline.settings import KafkaAuth, SettingsError
from meterline.topology import AGGREGATES_TABLE, TABLES, TOPICS, USAGE_EVENTS
from tests.handlers.test_gcp_handlers import (
    CATALOG,
    EVENTS,
    document_created,
    framework_app,
    load_handler,
    pubsub_event,
    pubsub_events,
)
from tests.pipeline.test_cell import make_events, stream_vs_batch

TOPIC = USAGE_EVENTS.name


def after_november() -> datetime:
    return datetime(2026, 12, 2, tzinfo=UTC)


@dataclass
class KafkaCell:
    bootstrap: str
    store: StreamingMemoryStore
    jobs: Jobs
    produced: list[tuple[int, int, bytes]] = field(default_factory=list)
    """(partition, offset, value) of every record produced."""

    def handler(self, job: str) -> ModuleType:
        """functions/<job>/gcp.py with the cell's jobs."""
        module = load_handler(job)
        module.jobs.use(self.jobs)
        return module

    @property
    def meter(self) -> ModuleType:
        return self.handler("meter")

    def produce(self, partition: int, values: list[bytes]) -> list[tuple[int, int, bytes]]:
        producer = Producer({"bootstrap.servers": self.bootstrap})
        acked: list[tuple[int, int, bytes]] = []
        for value in values:
            producer.produce(
                TOPIC,
                value=value,
                partition=partition,
                on_delivery=lambda e, m: acked.append((m.partition(), m.offset(), m.value())),
            )
        assert producer.flush(10) == 0
        self.produced += acked
        return sorted(acked)

    def metered(self, records: list[tuple[int, int, bytes]]) -> None:
        """Meter each record as the Pub/Sub sink would forward it, with its Kafka position."""
        for partition, offset, value in records:
            self.meter.handler(pubsub_event(value, TOPIC, partition, offset))

    def committed(self, group: str = "aggregate") -> dict[int, int]:
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        try:
            found = consumer.committed([TopicPartition(TOPIC, p) for p in range(USAGE_EVENTS.partitions)], 10)
        finally:
            consumer.close()
        return {tp.partition: tp.offset for tp in found if tp.offset >= 0}

    def rewind(self, offsets: dict[int, int], group: str = "aggregate") -> None:
        """Put the group's offsets back: what a crash between the transaction and the offset
        commit leaves behind."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        try:
            consumer.commit(
                offsets=[TopicPartition(TOPIC, p, o) for p, o in offsets.items()], asynchronous=False
            )
        finally:
            consumer.close()

    def aggregates(self) -> list[Item]:
        return sorted(self.store.scan(AGGREGATES_TABLE.name), key=lambda item: (item["pk"], item["sk"]))


def valid_events(count: int) -> list[bytes]:
    """Generated ingress events, without the generator's duplicates, conflicts and malformed lines."""
    events: dict[str, bytes] = {}
    for line in make_events(seed=1, count=count * 4):
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if event["type"] == "kafka.ingress":
            events.setdefault(event["id"], line)
    return list(events.values())[:count]


def scheduled_call(aggregate: Any) -> dict[str, Any]:
    """Cloud Scheduler's POST, with an empty body, to the function."""
    request = flask.Request(EnvironBuilder(method="POST", data=b"").get_environ())
    body, status = aggregate.handler(request)
    assert status == 200
    return dict(body)


@pytest.fixture
def kafka_cell(tmp_path: Path) -> Iterator[KafkaCell]:
    broker = TansuBroker(tmp_path / "broker.log")
    broker.start()
    try:
        create_topics(broker.bootstrap, TOPICS)
        settings = GcpSettings(
            table_prefix="test-",
            catalog=CATALOG,
            kafka_bootstrap=broker.bootstrap,
            kafka_auth=KafkaAuth.NONE,
            consumer_group="aggregate",
        )
        store = StreamingMemoryStore([t.name for t in TABLES], [t.name for t in TABLES if t.stream])
        # the ledger in memory instead of Firestore; the clock after November's grace
        jobs = bootstrap(settings, store=store, publisher=MemoryPublisher(), clock=after_november)
        yield KafkaCell(broker.bootstrap, store, jobs)
    finally:
        broker.stop()


def test_a_batch_read_again_from_the_same_offset_applies_nothing_twice(kafka_cell: KafkaCell) -> None:
    # GIVEN 40 metered records on partition 2, drained once
    records = kafka_cell.produce(2, make_events(seed=3, count=40))
    kafka_cell.metered(records)
    aggregate = kafka_cell.handler("aggregate")
    first = scheduled_call(aggregate)
    ledger = kafka_cell.aggregates()
    # WHEN the group's offset is put back, as a crash before the offset commit leaves it, and a
    # new instance drains again from the same offset
    kafka_cell.rewind({2: 0})
    again = scheduled_call(kafka_cell.handler("aggregate"))
    # THEN the batch comes again from the same first record and applies nothing
    end = len(records)
    assert first["applied"] > 0 and first["committed"] == {"2": end}
    assert again["applied"] == 0 and again["records"] == end and again["committed"] == {"2": end}
    assert kafka_cell.aggregates() == ledger
    assert kafka_cell.committed() == {2: end}


def test_a_longer_batch_from_the_same_offset_applies_only_what_lies_beyond(kafka_cell: KafkaCell) -> None:
    # GIVEN 20 records drained, their offset commit lost, and 20 more records metered since
    lines = make_events(seed=5, count=40)
    kafka_cell.metered(kafka_cell.produce(0, lines[:20]))
    first = scheduled_call(kafka_cell.handler("aggregate"))
    kafka_cell.rewind({0: 0})
    kafka_cell.metered(kafka_cell.produce(0, lines[20:]))
    # WHEN the next run reads one batch of all of them from offset 0
    again = scheduled_call(kafka_cell.handler("aggregate"))
    # THEN only the later records' usage is applied, and every accepted record once in all
    accepted = sum(1 for item in kafka_cell.store.scan("usage"))
    assert again["records"] == len(lines) and again["batches"] == 1
    assert first["applied"] + again["applied"] == accepted
    assert again["applied"] < accepted


def test_a_record_not_yet_metered_stops_its_partition_without_committing_past_it(
    kafka_cell: KafkaCell,
) -> None:
    # GIVEN five valid records on partition 0, of which meter has not reached the third yet
    values = valid_events(5)
    records = kafka_cell.produce(0, values)
    kafka_cell.metered(records[:2] + records[3:])
    aggregate = kafka_cell.handler("aggregate")
    # WHEN aggregate runs
    stopped = scheduled_call(aggregate)
    # THEN it applies the two before it, commits offset 2 and waits there
    assert (stopped["applied"], stopped["committed"], stopped["waiting"]) == (2, {"0": 2}, {"0": 2})
    assert kafka_cell.committed() == {0: 2}
    # AND once meter gets to it, the next run starts at it and applies the other three
    kafka_cell.metered(records[2:3])
    resumed = scheduled_call(aggregate)
    assert (resumed["applied"], resumed["committed"], resumed["waiting"]) == (3, {"0": 5}, {})


def test_records_that_cannot_be_aggregated_do_not_stop_their_partition(kafka_cell: KafkaCell) -> None:
    # GIVEN five valid records on partition 1: the second's usage item was damaged after meter
    # wrote it, and the fourth was never accepted (meter dead-lettered it as unprocessable)
    values = valid_events(5)
    records = kafka_cell.produce(1, values)
    kafka_cell.metered(records[:3] + records[4:])
    damaged = next(item for item in kafka_cell.store.scan("usage") if item["at"] == f"{TOPIC}|1|1")
    kafka_cell.store.put("usage", {**damaged, "m": b"not json"})
    position = {"pk": f"{TOPIC}|1", "sk": f"{3:020d}"}
    kafka_cell.store.put("outcomes", {**position, "outcome": "rejected", "reason": "unprocessable"})
    # WHEN aggregate runs
    report = scheduled_call(kafka_cell.handler("aggregate"))
    # THEN the partition is drained to its end: three records applied, the damaged one set aside
    assert (report["applied"], report["committed"], report["waiting"]) == (3, {"1": 5}, {})
    assert report["dead_lettered"] == 1
    [dead] = [item for item in kafka_cell.aggregates() if item["pk"] == "dead"]
    assert dead["delivery"] == f"{TOPIC}|1|1"


def test_one_run_settles_a_batch_on_each_of_two_partitions(kafka_cell: KafkaCell) -> None:
    # GIVEN metered usage on partitions 4 and 7, with duplicates and rejects among it
    lines = make_events(seed=9, count=60)
    kafka_cell.metered(kafka_cell.produce(4, lines[:30]) + kafka_cell.produce(7, lines[30:]))
    assert len(lines) > 60
    # WHEN one scheduled run drains the topic
    report = scheduled_call(kafka_cell.handler("aggregate"))
    # THEN each partition is one batch, committed to its end, and every accepted record applied once
    assert report["batches"] == 2 and report["committed"] == {"4": 30, "7": len(lines) - 30}
    assert report["records"] == len(lines)
    assert report["applied"] == sum(1 for _ in kafka_cell.store.scan("usage"))
    # AND a run with nothing new reads nothing and applies nothing
    assert scheduled_call(kafka_cell.handler("aggregate"))["records"] == 0


def test_a_partition_longer_than_the_batch_size_is_applied_batch_by_batch(kafka_cell: KafkaCell) -> None:
    # GIVEN 25 metered records on one partition and a drain with batches of 10
    kafka_cell.metered(kafka_cell.produce(5, valid_events(25)))
    jobs = kafka_cell.jobs
    assert isinstance(jobs.settings, GcpSettings)
    consumer = jobs.settings.consumer()
    try:
        drain = KafkaDrain(
            consumer,
            TOPIC,
            jobs.aggregator,
            kafka_cell.store,
            jobs.metering,
            batch_size=10,
            budget_seconds=30,
        )
        # WHEN it runs
        report = drain.run()
    finally:
        consumer.close()
    # THEN three batches (10, 10, 5) are committed one after the other
    assert (report.batches, report.records, report.committed) == (3, 25, {5: 25})


def test_usage_metered_without_its_kafka_position_is_refused_not_dropped(kafka_cell: KafkaCell) -> None:
    # GIVEN an event the sink forwarded without kafka.* attributes (meter recorded a Pub/Sub delivery)
    [message] = pubsub_events("pubsub_without_kafka_metadata.json")
    kafka_cell.meter.handler(copy.deepcopy(message))
    value = base64.b64decode(message.data["message"]["data"])
    kafka_cell.produce(0, [value])
    # WHEN aggregate reaches its record THEN it fails naming the cause, and commits nothing
    with pytest.raises(Exception, match=r"metered from pubsub:usage-events.* meter must be given the Kafka"):
        scheduled_call(kafka_cell.handler("aggregate"))
    assert kafka_cell.committed() == {}


def test_a_drain_budget_that_is_not_a_number_is_a_one_line_settings_error() -> None:
    env = {"METERLINE_TABLE_PREFIX": "p-", "METERLINE_DRAIN_SECONDS": "soon"}
    with pytest.raises(SettingsError, match=r"^the function setting METERLINE_DRAIN_SECONDS must be a num"):
        GcpSettings.from_env(env, Path("."))


def test_meter_scheduled_aggregate_rate_close_bill_what_meterline_rate_bills(kafka_cell: KafkaCell) -> None:
    # GIVEN two months of generated usage (duplicates, conflicts, malformed lines), each tenant's
    # events on a partition of their own as the feed keys them, one Pub/Sub message per record to
    # meter, some delivered twice
    lines = make_events(seed=11, count=160)
    by_partition: dict[int, list[bytes]] = {}
    for line in lines:
        by_partition.setdefault(sum(subject_of(line) or b"") % 3, []).append(line)
    records = [r for partition, part in by_partition.items() for r in kafka_cell.produce(partition, part)]
    kafka_cell.metered(records + records[::17])
    # WHEN the scheduler calls aggregate twice, each created partial reaches rate, and close runs
    aggregate = kafka_cell.handler("aggregate")
    reports = [scheduled_call(aggregate) for _ in range(2)]
    rate = kafka_cell.handler("rate")
    for micros, entry in enumerate(kafka_cell.store.streams[AGGREGATES_TABLE.name], 1_793_700_000_000_000):
        rate.handler(document_created(AGGREGATES_TABLE.name, entry.item, micros))
    client = framework_app("close", kafka_cell.jobs)
    response = client.test_client().post("/", json=json.loads((EVENTS / "scheduler_close.json").read_text()))
    # THEN October and November close, and their invoices equal `meterline rate` on the same records
    assert response.status_code == 200 and response.get_json() == {"closed": ["2026-10", "2026-11"]}
    assert reports[0]["records"] == len(lines) and reports[1]["records"] == 0
    catalog = load_catalog(CATALOG)
    invoices = invoices_by_period(kafka_cell.store)
    assert stream_vs_batch(catalog, kafka_cell.store, lines) == []
    assert sum(len(v) for v in invoices.values()) == 4
