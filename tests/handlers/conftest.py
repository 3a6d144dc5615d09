"""AWS handler tests: the real handlers, real boto3 calls against moto, fixtures from tests/events/aws."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meterline.adapters.aws_lambda import AwsSettings
from meterline.adapters.dynamodb import create_tables
from meterline.adapters.memory import MemoryPublisher, MemoryStore
from meterline.bootstrap import Jobs, bootstrap
from meterline.local.lifecycle import DriverClock
from meterline.local.runtime import load_function

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events" / "aws"
CATALOG = EVENTS / "catalog.yaml"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def load_handler(job: str, cloud: str = "aws") -> ModuleType:
    """functions/<job>/<cloud>.py, loaded afresh as the cloud's runtime loads it."""
    path = ROOT / "functions" / job / f"{cloud}.py"
    return load_function(path, f"handler_{job}_{cloud}", f"the {job} handler")


def outcomes(store: MemoryStore) -> list[tuple[str, str, str, str]]:
    """The outcomes ledger as sorted (partition, position, outcome, reason)."""
    return sorted(
        (str(i["pk"]), str(i["sk"]), str(i["outcome"]), str(i["reason"])) for i in store.scan("outcomes")
    )


@dataclass
class LambdaContext:
    function_name: str = "meterline-test"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:meterline-test"
    memory_limit_in_mb: int = 1769
    aws_request_id: str = "req-1"
    log_group_name: str = "/aws/lambda/meterline-test"
    log_stream_name: str = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass
class AwsCell:
    client: Any
    publisher: MemoryPublisher
    context: LambdaContext
    jobs: Jobs
    clock: DriverClock

    def handler(self, job: str) -> ModuleType:
        """functions/<job>/aws.py with the cell's jobs, as the composition root builds them."""
        module = load_handler(job)
        module.jobs.use(self.jobs)
        return module


@pytest.fixture
def aws_cell(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsCell]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # what Lambda's role gives the function
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    publisher, clock = MemoryPublisher(), DriverClock()
    settings = AwsSettings(table_prefix="test-", catalog=CATALOG)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=settings.region)
        create_tables(client, "test-")
        # the store as the settings make it; MSK is not in moto: topics are faked
        jobs = bootstrap(settings, publisher=publisher, clock=clock)
        yield AwsCell(client, publisher, LambdaContext(), jobs, clock)
