"""The local event source mappings deliver, retry and give up the way Lambda's do."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from meterline.local.esm import KafkaEventSourceMapping, KafkaRecord
from meterline.local.streams import StreamEventSourceMapping, lambda_record
from meterline.topology import AGGREGATE, METER, USAGE_EVENTS


class ScriptedFunction:
    """Answers each invocation from a script, and keeps every event it was given."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.events: list[dict[str, Any]] = []

    def invoke(self, job: str, event: dict[str, Any], timeout_seconds: int = 900) -> dict[str, Any]:
        self.events.append(event)
        answer = self.answers.pop(0) if self.answers else {"batchItemFailures": []}
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)


def records(partition: int, offsets: range) -> list[KafkaRecord]:
    return [
        KafkaRecord(USAGE_EVENTS.name, partition, offset, 0, b"org-1", f"v{offset}".encode(), (("h", b"1"),))
        for offset in offsets
    ]


def offsets_in(event: dict[str, Any]) -> dict[str, list[int]]:
    return {name: [r["offset"] for r in batch] for name, batch in event["records"].items()}


def failure(partition: int, offset: int) -> dict[str, Any]:
    return {"itemIdentifier": {"partition": f"{USAGE_EVENTS.name}-{partition}", "offset": offset}}


def test_kafka_batch_is_an_aws_kafka_event_with_base64_keys_values_and_byte_headers(tmp_path: Path) -> None:
    # GIVEN a mapping and two records of one partition
    function = ScriptedFunction()
    mapping = KafkaEventSourceMapping(function, METER, USAGE_EVENTS, "b:9092", tmp_path / "f", {})  # type: ignore[arg-type]
    mapping.positions = {0: 10}
    # WHEN they are delivered
    mapping.deliver(records(0, range(10, 12)))
    # THEN the function sees them as MSK sends them, keyed "topic-partition"
    (event,) = function.events
    assert event["eventSource"] == "aws:kafka"
    (first, second) = event["records"][f"{USAGE_EVENTS.name}-0"]
    assert base64.b64decode(first["value"]) == b"v10" and base64.b64decode(first["key"]) == b"org-1"
    assert first["headers"] == [{"h": [49]}] and second["offset"] == 11
    assert mapping.positions == {0: 12}


def test_kafka_failures_are_redelivered_from_the_lowest_failed_offset_of_each_partition(
    tmp_path: Path,
) -> None:
    # GIVEN a function that fails offsets 3 and 5 of partition 0 once, and nothing on partition 1
    function = ScriptedFunction({"batchItemFailures": [failure(0, 5), failure(0, 3)]})
    mapping = KafkaEventSourceMapping(function, METER, USAGE_EVENTS, "b", tmp_path / "f", {})  # type: ignore[arg-type]
    mapping.positions = {0: 0, 1: 0}
    # WHEN a batch over both partitions is delivered
    mapping.deliver(records(0, range(6)) + records(1, range(2)))
    # THEN only partition 0 comes again, from offset 3 on
    assert [offsets_in(event) for event in function.events] == [
        {f"{USAGE_EVENTS.name}-0": [0, 1, 2, 3, 4, 5], f"{USAGE_EVENTS.name}-1": [0, 1]},
        {f"{USAGE_EVENTS.name}-0": [3, 4, 5]},
    ]
    assert mapping.retries == 1 and mapping.failed_batches == 0 and not (tmp_path / "f").exists()


def test_kafka_batch_goes_to_on_failure_after_its_retries(tmp_path: Path) -> None:
    # GIVEN a function that always raises
    function = ScriptedFunction(*[RuntimeError("down")] * 10)
    mapping = KafkaEventSourceMapping(
        function,  # type: ignore[arg-type]
        METER,
        USAGE_EVENTS,
        "b",
        tmp_path / "on-failure.ndjson",
        {},
        max_retries=2,
    )
    mapping.positions = {4: 7}
    # WHEN a batch is delivered
    mapping.deliver(records(4, range(7, 9)))
    # THEN it was tried three times, written to the on-failure destination, and passed over
    assert len(function.events) == 3
    (entry,) = [orjson.loads(line) for line in (tmp_path / "on-failure.ndjson").read_bytes().splitlines()]
    assert entry["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert entry["KafkaBatchInfo"] == {
        "batchSize": 2,
        "topicPartition": f"{USAGE_EVENTS.name}-4",
        "firstOffset": 7,
        "lastOffset": 8,
    }
    assert mapping.positions == {4: 9}


def stream_record(sequence: int) -> dict[str, Any]:
    """A record as boto3's dynamodbstreams client returns it: binary decoded, time a datetime."""
    return {
        "eventID": f"e{sequence}",
        "eventName": "INSERT",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2026, 11, 2, tzinfo=UTC),
            "Keys": {"pk": {"S": f"k{sequence}"}, "sk": {"S": "event"}},
            "NewImage": {"pk": {"S": f"k{sequence}"}, "fp": {"B": b"\x00\xff"}, "n": {"N": "5"}},
            "SequenceNumber": str(sequence),
            "SizeBytes": 40,
            "StreamViewType": "NEW_IMAGE",
        },
    }


def test_stream_record_takes_lambdas_json_shape_with_binary_in_base64() -> None:
    # WHEN a polled record is put in Lambda's shape
    record = lambda_record(stream_record(7), "arn:stream", "us-east-1")
    # THEN binary values are base64 text and the whole record is JSON
    assert record["dynamodb"]["NewImage"]["fp"] == {"B": base64.b64encode(b"\x00\xff").decode()}
    assert record["eventSource"] == "aws:dynamodb" and record["eventSourceARN"] == "arn:stream"
    assert orjson.loads(orjson.dumps(record)) == record


def test_stream_batch_that_raised_is_retried_from_its_first_record(tmp_path: Path) -> None:
    # GIVEN a function that raises once, then succeeds
    function = ScriptedFunction(RuntimeError("crashed before its commit"))
    mapping = StreamEventSourceMapping(
        function,  # type: ignore[arg-type]
        AGGREGATE,
        None,
        None,
        "t",
        "us-east-1",
        tmp_path / "f",
    )
    batch = [lambda_record(stream_record(n), "arn", "us-east-1") for n in (1, 2, 3)]
    # WHEN the batch is delivered
    mapping.deliver(batch)
    # THEN the same batch came twice, from the same first record
    sequences = [[r["dynamodb"]["SequenceNumber"] for r in event["Records"]] for event in function.events]
    assert sequences == [["1", "2", "3"], ["1", "2", "3"]]
    assert mapping.retries == 1 and mapping.delivered == 3
