"""The cell's publish and the home's ingest on AWS: the real handlers, boto3 against moto (DynamoDB,
S3, STS), the cell's statements crossing to the home through its bucket as an S3 notification."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest

from meterline.adapters.aws_lambda import AwsSettings
from meterline.adapters.dynamodb import DynamoStore, create_tables
from meterline.bootstrap import Jobs, bootstrap
from meterline.pipeline.ingest import applied_sk
from meterline.pipeline.ledger import is_partial
from meterline.settings import SettingsError
from meterline.statements import Address

from .conftest import CATALOG, AwsCell, load_event, load_handler
from .test_aws_handlers import stream_event

CELL = "aws-us-east-1"
BUCKET = "home-statements"
AFTER_GRACE = datetime(2026, 12, 2, tzinfo=UTC)
CELL_SETTINGS = AwsSettings(
    table_prefix="test-",
    catalog=CATALOG,
    cell_name=CELL,
    statements_bucket=BUCKET,
    statements_region="us-east-1",
    statements_role_arn="arn:aws:iam::123456789012:role/home-aws-us-east-1-statements",
)
"""What the cell's publish reads once its stack knows its home."""
HOME_SETTINGS = AwsSettings(table_prefix="home-", catalog=CATALOG, statements_bucket=BUCKET, cells=(CELL,))
"""What the home's ingest reads: its own ledgers and bucket."""


@dataclass
class Home:
    s3: Any
    cell: Jobs
    """The cell's jobs as its publish settings make them."""
    jobs: Jobs
    """The home's jobs as its ingest settings make them."""

    def handler(self, job: str, jobs: Jobs) -> ModuleType:
        module = load_handler(job)
        module.jobs.use(jobs)
        return module


@pytest.fixture
def home(aws_cell: AwsCell) -> Home:
    """The home's bucket and ledgers beside the cell, and the jobs of both from their settings."""
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    create_tables(aws_cell.client, "home-")
    aws_cell.clock.set(AFTER_GRACE)
    cell = bootstrap(CELL_SETTINGS, publisher=aws_cell.publisher, clock=aws_cell.clock)
    return Home(s3, cell, bootstrap(HOME_SETTINGS, publisher=aws_cell.publisher, clock=aws_cell.clock))


def metered_and_aggregated(aws_cell: AwsCell) -> None:
    aws_cell.handler("meter").handler(load_event("msk_mixed_batch.json"), aws_cell.context)
    store = DynamoStore(aws_cell.client, "test-")
    usage = sorted(store.scan("usage"), key=lambda item: str(item["pk"]))
    aws_cell.handler("aggregate").handler(stream_event(aws_cell.client, "usage", usage), aws_cell.context)


def published(aws_cell: AwsCell, home: Home) -> dict[str, Any]:
    response: dict[str, Any] = home.handler("publish", home.cell).handler({}, aws_cell.context)
    return response


def keys(s3: Any) -> list[str]:
    return sorted(entry["Key"] for entry in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def notification(message_id: str, *object_keys: str) -> dict[str, Any]:
    body = {
        "Records": [
            {"eventName": "ObjectCreated:Put", "s3": {"object": {"key": quote_plus(k)}}} for k in object_keys
        ]
    }
    return {"messageId": message_id, "body": json.dumps(body)}


def test_publish_puts_each_partial_once_and_the_final_marker_after_grace(
    aws_cell: AwsCell, home: Home
) -> None:
    # GIVEN a cell that metered and aggregated November's usage
    metered_and_aggregated(aws_cell)
    partials = [i for i in DynamoStore(aws_cell.client, "test-").scan("aggregates") if is_partial(i)]
    # WHEN its schedule fires after November's grace, twice
    first = published(aws_cell, home)
    second = published(aws_cell, home)
    # THEN each partial's statement and November's final marker stand under the cell's prefix, once
    # (the months before, without usage here, are final too: the home waits for every cell's marker)
    assert first["published"] == len(partials) and first["final"][-1] == "2026-11"
    assert second == {"published": 0, "final": []}
    november = [k for k in keys(home.s3) if "/2026-11/" in k]
    assert all(k.startswith(f"statements/{CELL}/2026-11/") for k in november)
    assert len(november) == len(partials) + 1 and f"statements/{CELL}/2026-11/final.json" in november


def test_publish_without_its_home_settings_fails_naming_them(aws_cell: AwsCell) -> None:
    # GIVEN a cell deployed before its home (no statements settings: its schedule is paused)
    settings = AwsSettings(table_prefix="test-", catalog=CATALOG, cell_name=CELL, statements_role_arn="arn:r")
    jobs = bootstrap(settings, publisher=aws_cell.publisher, clock=aws_cell.clock)
    publish = load_handler("publish")
    publish.jobs.use(jobs)
    # WHEN publish runs THEN it fails with one line naming what is missing
    with pytest.raises(SettingsError, match="METERLINE_STATEMENTS_BUCKET, METERLINE_STATEMENTS_REGION are"):
        publish.handler({}, aws_cell.context)


def test_ingest_applies_each_statement_once_and_hands_back_what_it_cannot_read(
    aws_cell: AwsCell, home: Home
) -> None:
    # GIVEN the cell's statements in the home's bucket
    metered_and_aggregated(aws_cell)
    published(aws_cell, home)
    november = [k for k in keys(home.s3) if "/2026-11/" in k]
    home.s3.put_object(Bucket=BUCKET, Key=f"statements/{CELL}/2026-11/{'0' * 32}.json", Body=b"not json")
    ingest = home.handler("ingest", home.jobs)
    # WHEN the notifications arrive, one of them twice, plus a test event and a broken object
    event = {
        "Records": [
            notification("m1", *november),
            notification("m2", november[0]),
            {"messageId": "m3", "body": json.dumps({"Event": "s3:TestEvent"})},
            notification("m4", f"statements/{CELL}/2026-11/{'0' * 32}.json"),
        ]
    }
    response = ingest.handler(event, aws_cell.context)
    # THEN only the broken object's message is handed back, and each statement is applied once
    assert response == {"batchItemFailures": [{"itemIdentifier": "m4"}]}
    store = DynamoStore(aws_cell.client, "home-")
    statements = [Address.of(k) for k in november if not Address.of(k).is_final]
    for address in statements:
        assert store.get("aggregates", "period|2026-11", applied_sk(CELL, address.name)) is not None
    home_partials = [i for i in store.scan("aggregates") if is_partial(i)]
    assert len(home_partials) == len(statements)
    # AND the cell reported November: its final marker stands with every statement it names applied
    assert home.jobs.ingest.reported(Address.of(november[0]).period) == {CELL}


def test_ingest_counts_other_bytes_under_an_applied_key_as_a_conflict_not_a_retry(
    aws_cell: AwsCell, home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a statement applied by the home
    metered_and_aggregated(aws_cell)
    published(aws_cell, home)
    statement = next(k for k in keys(home.s3) if k.endswith(".json") and not k.endswith("final.json"))
    ingest = home.handler("ingest", home.jobs)
    ingest.handler({"Records": [notification("m1", statement)]}, aws_cell.context)
    # WHEN other bytes stand under its key (a bucket changed behind the exchange) and are announced
    body = json.loads(home.s3.get_object(Bucket=BUCKET, Key=statement)["Body"].read())
    body["usage"] = body["usage"][:0]
    home.s3.put_object(Bucket=BUCKET, Key=statement, Body=json.dumps(body, sort_keys=True).encode())
    before = sorted(map(str, DynamoStore(aws_cell.client, "home-").scan("aggregates")))
    capsys.readouterr()
    response = ingest.handler({"Records": [notification("m2", statement)]}, aws_cell.context)
    # THEN the message is not handed back, the alarm's metric counts one conflict, and the first
    # bytes stand, nothing else applied
    assert response == {"batchItemFailures": []}
    [emf] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf["statement_conflicts"] == [1.0] and emf["statements_duplicate"] == [0.0]
    assert sorted(map(str, DynamoStore(aws_cell.client, "home-").scan("aggregates"))) == before
