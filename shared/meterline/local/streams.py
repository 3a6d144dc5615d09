"""The DynamoDB Streams event source mapping, locally: a table's stream to a function.

Polls the stream (boto3 ``dynamodbstreams``, here against the moto server) and passes INSERT
records (the event filter ``{"eventName": ["INSERT"]}``) in Lambda's stream-event shape: binary
attributes base64 in the JSON. A batch is up to the function's batch size, or what arrived
within its batching window — or, when the driver is draining, what the stream holds now. A
batch that raised, or reported a failed record, is retried from its first (failed) record; after
``max_retries`` it goes to the on-failure file and the mapping moves past it.
"""

from __future__ import annotations

import base64
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from meterline.topology import Function

from .runtime import Runtime, retries_exhausted

POLL_SECONDS = 0.25
"""Lambda polls a stream shard four times a second."""


def lambda_value(value: dict[str, Any]) -> dict[str, Any]:
    """An attribute value as Lambda's JSON carries it (boto3 hands binary over decoded)."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(member).decode() for member in inner]}
    if kind == "M":
        return {"M": {name: lambda_value(member) for name, member in inner.items()}}
    if kind == "L":
        return {"L": [lambda_value(member) for member in inner]}
    return value


def lambda_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    change = record["dynamodb"]
    created = change.get("ApproximateCreationDateTime")
    image = {
        "ApproximateCreationDateTime": created.timestamp() if isinstance(created, datetime) else created,
        "Keys": {name: lambda_value(value) for name, value in change["Keys"].items()},
        "SequenceNumber": change["SequenceNumber"],
        "SizeBytes": change.get("SizeBytes", 0),
        "StreamViewType": change.get("StreamViewType", "NEW_IMAGE"),
    }
    if "NewImage" in change:
        image["NewImage"] = {name: lambda_value(value) for name, value in change["NewImage"].items()}
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": image,
        "eventSourceARN": stream_arn,
    }


class StreamEventSourceMapping:
    def __init__(
        self,
        runtime: Runtime,
        function: Function,
        dynamodb: Any,
        streams: Any,
        table_name: str,
        region: str,
        on_failure: Path,
        max_retries: int = 3,
    ) -> None:
        self.runtime = runtime
        self.function = function
        self.dynamodb = dynamodb
        self.streams = streams
        self.table_name = table_name
        self.region = region
        self.on_failure = on_failure
        self.max_retries = max_retries
        self.draining = threading.Event()
        self.delivered = self.skipped = self.invocations = self.retries = self.failed_batches = 0
        self.idle_polls = 0
        """Polls that found the stream empty with nothing pending: the driver's sign of caught up."""
        self.failure: BaseException | None = None

    def run(self, stop: threading.Event) -> None:
        try:
            self._run(stop)
        except BaseException as error:  # surfaced by the driver
            self.failure = error

    def _run(self, stop: threading.Event) -> None:
        arn = self.dynamodb.describe_table(TableName=self.table_name)["Table"]["LatestStreamArn"]
        shard = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = self.streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        size, window = self.function.batch_size, self.function.batching_window_seconds
        pending: list[dict[str, Any]] = []
        first_at = 0.0
        while not stop.is_set():
            response = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            iterator = response["NextShardIterator"]
            found = response["Records"]
            for record in found:
                if record["eventName"] != "INSERT":
                    self.skipped += 1
                    continue
                if not pending:
                    first_at = time.monotonic()
                pending.append(lambda_record(record, arn, self.region))
            while len(pending) >= size:
                self.deliver(pending[:size])
                pending = pending[size:]
            due = time.monotonic() - first_at >= window or (self.draining.is_set() and not found)
            if pending and due:
                self.deliver(pending)
                pending = []
            if not found:
                if not pending:
                    self.idle_polls += 1
                stop.wait(POLL_SECONDS)

    def deliver(self, records: list[dict[str, Any]]) -> None:
        batch = records
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.retries += 1
            start = self._invoke(batch)
            if start is None:
                break
            batch = batch[start:]
        else:
            self._give_up(batch, self.max_retries + 1)
        self.delivered += len(records)

    def _invoke(self, batch: list[dict[str, Any]]) -> int | None:
        """Where to retry from: None when the batch succeeded."""
        self.invocations += 1
        event = orjson.loads(orjson.dumps({"Records": batch}))
        try:
            response = self.runtime.invoke(self.function.job, event, self.function.timeout_seconds)
        except Exception:
            return 0
        failed = {str(f["itemIdentifier"]) for f in response.get("batchItemFailures") or ()}
        if not failed:
            return None
        return next((i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed), 0)

    def _give_up(self, batch: list[dict[str, Any]], invokes: int) -> None:
        self.failed_batches += 1
        entry = {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "requestContext": retries_exhausted(self.function.job, invokes),
            "DDBStreamBatchInfo": {
                "shardId": "local",
                "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                "batchSize": len(batch),
                "streamArn": batch[0]["eventSourceARN"],
            },
        }
        with self.on_failure.open("ab") as out:
            out.write(orjson.dumps(entry) + b"\n")
