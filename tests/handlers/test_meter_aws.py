"""The meter's Lambda handler on the in-memory store: per-record failures, dead letters, and what it
logs and measures. (test_aws_handlers.py runs the same handler against DynamoDB on moto.)"""

from __future__ import annotations

import base64
import copy
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import orjson
import pytest

from meterline.adapters.aws_lambda import msk_records
from meterline.adapters.memory import MemoryPublisher, MemoryStore
from meterline.bootstrap import Jobs
from meterline.catalog import load_catalog
from meterline.pipeline.processing import MAX_ATTEMPTS
from meterline.ports import Item, RetriableStoreError, StoreError
from meterline.topology import TABLES, USAGE_REJECTED, USAGE_TABLE

from .conftest import CATALOG, LambdaContext, load_event, load_handler


class FailingStore(MemoryStore):
    """Fails the usage write of the event with ``event_id``, with ``error``."""

    def __init__(self, event_id: str, error: Exception) -> None:
        super().__init__([table.name for table in TABLES])
        self.event_id, self.error = event_id, error

    def put_new(self, table: str, item: Item) -> Item | None:
        if table == USAGE_TABLE.name and item.get("id") == self.event_id:
            raise self.error
        return super().put_new(table, item)


class CurrentStdout:
    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@dataclass
class MeterFunction:
    module: ModuleType
    store: MemoryStore
    publisher: MemoryPublisher
    context: LambdaContext

    def __call__(self, event: dict[str, Any]) -> Any:
        return self.module.handler(copy.deepcopy(event), self.context)


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore([table.name for table in TABLES])


@pytest.fixture
def meter_function(memory_store: MemoryStore) -> Iterator[MeterFunction]:
    module = load_handler("meter")
    publisher = MemoryPublisher()
    module.jobs.use(Jobs(load_catalog(CATALOG), memory_store, publisher))  # in place of DynamoDB and MSK
    # Powertools keeps a service's first log handler for the whole process: point it at whatever
    # sys.stdout is when it writes (capsys's during a test).
    handler = module.logger.logger_handler
    stream, handler.stream = handler.stream, CurrentStdout()
    yield MeterFunction(module, memory_store, publisher, LambdaContext())
    handler.stream = stream


def log_lines(captured: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in captured.splitlines() if line.startswith("{")]


def failed(response: dict[str, Any]) -> list[tuple[str, int]]:
    return [
        (f["itemIdentifier"]["partition"], f["itemIdentifier"]["offset"])
        for f in response["batchItemFailures"]
    ]


def usage_ids(store: MemoryStore) -> set[str]:
    return {str(item["id"]) for item in store.scan(USAGE_TABLE.name)}


@pytest.mark.parametrize("memory_store", [FailingStore("evt-1", RetriableStoreError("throttled"))])
def test_a_store_failure_hands_back_that_record_and_the_rest_of_its_partition_only(
    meter_function: MeterFunction,
) -> None:
    # GIVEN the usage write of partition 0's first event is throttled
    # WHEN the mixed batch is metered
    response = meter_function(load_event("msk_mixed_batch.json"))
    # THEN partition 0 is handed back from that record on, in Kafka's item identifiers
    assert failed(response) == [("usage.events-0", offset) for offset in range(100, 105)]
    # AND partition 3 went through: its two good events accepted, its unknown type dead-lettered
    assert usage_ids(meter_function.store) == {"evt-2", "evt-3"}
    [dead] = meter_function.publisher.on(USAGE_REJECTED.name)
    assert dead.headers["reason"] == b"unknown_type"


@pytest.mark.parametrize("memory_store", [FailingStore("evt-2", KeyError("a bug"))])
def test_an_unexpected_error_hands_back_its_partition_and_is_logged_with_its_correlation_id(
    meter_function: MeterFunction, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a failure that is no store or publish error, on partition 3's first event
    # WHEN metered
    response = meter_function(load_event("msk_mixed_batch.json"))
    # THEN partition 3 is handed back rather than the invocation failing, and partition 0 is metered
    assert failed(response) == [("usage.events-3", 7), ("usage.events-3", 8), ("usage.events-3", 10)]
    assert usage_ids(meter_function.store) == {"evt-1"}
    # AND the failure is logged once, with the record's delivery as correlation id and the traceback
    [warning] = [line for line in log_lines(capsys.readouterr().out) if line.get("level") == "WARNING"]
    assert warning["correlation_id"] == "usage.events|3|7"
    assert "KeyError: 'a bug'" in warning["exception"]


@pytest.mark.parametrize("memory_store", [FailingStore("evt-2", StoreError("ValidationException"))])
def test_a_record_that_keeps_failing_is_dead_lettered_and_measured_for_an_alarm(
    meter_function: MeterFunction, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a store that refuses partition 3's first event every time
    event = load_event("msk_mixed_batch.json")
    # WHEN Lambda delivers what is handed back until nothing is
    for _ in range(MAX_ATTEMPTS - 1):
        assert ("usage.events-3", 7) in failed(meter_function(event))
    capsys.readouterr()
    response = meter_function(event)
    # THEN the last delivery hands nothing back: the record is dead-lettered, its partition went on
    assert response == {"batchItemFailures": []}
    assert usage_ids(meter_function.store) == {"evt-1", "evt-3"}
    lines = log_lines(capsys.readouterr().out)
    [emf] = [line for line in lines if "_aws" in line]
    assert emf["dead_lettered"] == [1.0] and emf["rejected_unprocessable"] == [1.0]
    [error] = [line for line in lines if line.get("level") == "ERROR"]
    assert (error["correlation_id"], error["attempts"]) == ("usage.events|3|7", MAX_ATTEMPTS)


def test_rejects_are_logged_with_their_delivery_as_correlation_id(
    meter_function: MeterFunction, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the mixed batch is metered
    response = meter_function(load_event("msk_mixed_batch.json"))
    # THEN nothing is handed back, and each reject has a line keyed as its outcome and dead letter are
    assert response == {"batchItemFailures": []}
    rejected = [
        line for line in log_lines(capsys.readouterr().out) if line.get("message") == "event rejected"
    ]
    assert sorted((line["correlation_id"], line["reason"]) for line in rejected) == [
        ("usage.events|0|102", "conflict"),
        ("usage.events|0|103", "malformed"),
        ("usage.events|0|104", "malformed"),
        ("usage.events|3|10", "unknown_type"),
    ]
    assert {line["function_request_id"] for line in rejected} == {meter_function.context.aws_request_id}
    dead_letters = {m.headers["delivery"]: m.value for m in meter_function.publisher.on(USAGE_REJECTED.name)}
    assert set(dead_letters) == {line["correlation_id"].encode() for line in rejected}
    assert dead_letters[b"usage.events|0|103"] == b"\xff\xfe not utf-8 \x80"


def test_outcomes_are_published_as_one_set_of_metrics_per_batch(
    meter_function: MeterFunction, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the mixed batch is metered
    meter_function(load_event("msk_mixed_batch.json"))
    # THEN one EMF document carries the batch's outcome counts
    [emf] = [line for line in log_lines(capsys.readouterr().out) if "_aws" in line]
    names = {metric["Name"] for metric in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {name: emf[name] for name in names} == {
        "events_accepted": [3.0],
        "events_duplicate": [1.0],
        "events_rejected": [4.0],
        "rejected_conflict": [1.0],
        "rejected_malformed": [2.0],
        "rejected_unknown_type": [1.0],
    }


def test_a_record_without_a_value_is_dead_lettered_not_handed_back(meter_function: MeterFunction) -> None:
    # GIVEN a tombstone: a record whose value is null
    event = load_event("msk_mixed_batch.json")
    tombstone = {**event["records"]["usage.events-3"][0], "value": None}
    event["records"] = {"usage.events-3": [tombstone]}
    # WHEN metered THEN it is rejected as malformed and dead-lettered with empty bytes and its key
    assert meter_function(event) == {"batchItemFailures": []}
    [dead] = meter_function.publisher.on(USAGE_REJECTED.name)
    assert (dead.headers["reason"], dead.key, dead.value) == (b"malformed", b"org-2", b"")


def test_msk_records_decode_in_partition_order_with_their_keys_and_bytes() -> None:
    # GIVEN the fixture's records, base64 as MSK sends them, one of them keyless
    event = load_event("msk_mixed_batch.json")
    # WHEN decoded
    records = list(msk_records(event))
    # THEN they come in partition order, each with its delivery, its key (or None) and its bytes
    expected = [
        (record["topic"], record["partition"], record["offset"], record["key"], record["value"])
        for partition in event["records"].values()
        for record in partition
    ]
    assert [
        (
            r.delivery.topic,
            r.delivery.partition,
            r.delivery.offset,
            None if r.key is None else base64.b64encode(r.key).decode(),
            base64.b64encode(r.value).decode(),
        )
        for r in records
    ] == expected
    assert any(r.key is None for r in records)
