"""The billing home on this machine (SPEC §8), AWS's way as the home stack deploys it: a moto server
of its own for its DynamoDB ledgers and its S3 statements bucket, and the home's Lambda handlers
(``functions/ingest``, ``rate`` and ``close``: ``aws.py``) driven as AWS drives them.

- Each cell's publish writes its statements into the bucket (``exchange()`` opens it for a cell).
- S3's object-created notifications reach ingest through SQS: here ``notify`` lists the bucket past
  the keys already announced and hands ingest SQS batches of S3 event notifications, ten messages
  a batch, as the event source mapping does.
- rate and close run on their schedules: here when the driver calls them, at its clock.

The home announces issued invoices and spend alerts on SNS when deployed; here its publisher is the
in-memory one, and the demo counts what it announced.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from meterline.adapters.aws_lambda import AwsSettings
from meterline.adapters.dynamodb import DynamoStore, create_tables
from meterline.adapters.memory import MemoryPublisher
from meterline.adapters.s3 import S3Exchange
from meterline.bootstrap import Jobs, bootstrap
from meterline.settings import KafkaAuth
from meterline.topology import HOME_CLOSE, HOME_RATE, INGEST, STATEMENTS_PREFIX

from .lifecycle import DriverClock, StartedTogether
from .motoserver import MotoServer, moto_client
from .runtime import Runtime

BUCKET = "meterline-home-statements"
SQS_BATCH = 10
"""Messages per ingest invocation: the SQS event source mapping's batch size."""


class LocalHome(StartedTogether):
    """Started and stopped as a context manager, like a cell."""

    def __init__(self, catalog: Path, log: Path, cells: Sequence[str], region: str = "us-east-1") -> None:
        super().__init__()
        self.catalog = catalog
        self.log = log
        self.cells = tuple(cells)
        self.region = region
        self.prefix = f"home-{uuid.uuid4().hex[:8]}-"
        self.clock = DriverClock()
        self.publisher = MemoryPublisher()
        self.announced: list[str] = []
        """Keys whose notification ingest was handed, in order."""

    def _start(self) -> None:
        log = self._exit.enter_context(self.log.open("a", buffering=1))
        self.server = MotoServer(self.log.with_suffix(".home.moto.log"))
        self._exit.callback(self.server.stop)
        self.server.start()
        self.endpoint = self.server.endpoint
        dynamodb = moto_client("dynamodb", self.endpoint, self.region)
        create_tables(dynamodb, self.prefix)
        self.store = DynamoStore(dynamodb, self.prefix)
        self.s3 = moto_client("s3", self.endpoint, self.region)
        self.s3.create_bucket(Bucket=BUCKET)
        self.settings = AwsSettings(
            table_prefix=self.prefix,
            catalog=self.catalog.resolve(),
            kafka_auth=KafkaAuth.NONE,
            region=self.region,
            dynamodb_endpoint=self.endpoint,
            cell_name="home",
            statements_bucket=BUCKET,
            cells=self.cells,
        )
        # Powertools logs and EMF metrics print to stdout: they go to the log, the terminal shows the demo
        self._exit.enter_context(contextlib.redirect_stdout(log))
        self.runtime = Runtime({f.job: f.memory_mb for f in (INGEST, HOME_RATE, HOME_CLOSE)}, self._wire)
        self._exit.callback(self.runtime.shutdown)

    def _wire(self) -> Jobs:
        jobs = bootstrap(self.settings, store=self.store, publisher=self.publisher, clock=self.clock)
        jobs.statements = self.exchange()
        return jobs

    def exchange(self) -> S3Exchange:
        """The statements bucket, through a client of its own (a cell's publish, the home's ingest)."""
        return S3Exchange(moto_client("s3", self.endpoint, self.region), BUCKET)

    def describe(self) -> str:
        return f"S3 s3://{BUCKET} · DynamoDB (moto) {self.endpoint} · tables {self.prefix}*"

    # driving ------------------------------------------------------------------------------------

    def notify(self) -> int:
        """S3's notifications of the objects created since the last call, to ingest in SQS batches;
        the statements applied (ingest's answer)."""
        seen = set(self.announced)  # not a StartAfter cursor: cells' new keys sort among the old ones
        keys = [key for key in S3Exchange(self.s3, BUCKET).keys(STATEMENTS_PREFIX) if key not in seen]
        applied = 0
        for start in range(0, len(keys), SQS_BATCH):
            batch = keys[start : start + SQS_BATCH]
            response = self.runtime.invoke(INGEST.job, sqs_event(batch, self.region), INGEST.timeout_seconds)
            if response.get("batchItemFailures"):
                raise HomeError(f"ingest handed back {response['batchItemFailures']}: see {self.log}")
            applied += len(batch)
            self.announced += batch
        return applied

    def rate(self, now: datetime) -> dict[str, Any]:
        """rate's schedule at ``now``: every open period's running charges, once per customer."""
        self.clock.set(now)
        result: dict[str, Any] = self.runtime.invoke(HOME_RATE.job, {}, HOME_RATE.timeout_seconds)
        return result

    def close(self, now: datetime) -> dict[str, Any]:
        """close's schedule at ``now``: what it issued, without which cells, and what still waits."""
        self.clock.set(now)
        result: dict[str, Any] = self.runtime.invoke(HOME_CLOSE.job, {}, HOME_CLOSE.timeout_seconds)
        return result


class HomeError(RuntimeError):
    pass


def sqs_event(keys: Sequence[str], region: str) -> dict[str, Any]:
    """An SQS batch as Lambda receives it, each message an S3 object-created notification."""
    from urllib.parse import quote_plus

    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "eventSource": "aws:sqs",
                "awsRegion": region,
                "body": orjson.dumps(
                    {
                        "Records": [
                            {
                                "eventSource": "aws:s3",
                                "eventName": "ObjectCreated:Put",
                                "s3": {"bucket": {"name": BUCKET}, "object": {"key": quote_plus(key)}},
                            }
                        ]
                    }
                ).decode(),
            }
            for key in keys
        ]
    }
