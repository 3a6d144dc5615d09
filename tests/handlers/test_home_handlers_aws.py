"""The cell's publish and the home's ingest on AWS: the real handlers, boto3 against moto (DynamoDB,
S3, STS), the cell's statements crossing to the home through its bucket as an S3 notification."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest

from meterline.adapters.aws_lambda import AwsSettings
from meterline.adapters.dynamodb import DynamoStore, create_tables, physical_name
from meterline.bootstrap import Jobs, bootstrap
from meterline.pipeline.ingest import applied_sk
from meterline.pipeline.invoices import invoices_by_period
from meterline.pipeline.ledger import is_partial
from meterline.settings import SettingsError
from meterline.statements import Address
from meterline.topology import BILLING_ALERTS, BILLING_INVOICES, CELL_TABLES, HOME_TOPICS, TABLES

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
    """The home's jobs as its settings make them: its ledgers, bucket, SNS topics and cells."""
    announced: dict[str, str]
    """topic → an SQS queue subscribed to its SNS topic (raw delivery), to read what was announced."""

    def settings(self, **changes: Any) -> AwsSettings:
        return dataclasses.replace(self.jobs.settings, **changes)  # type: ignore[type-var]

    def messages(self, topic: str) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name="us-east-1")
        found = []
        while batch := sqs.receive_message(QueueUrl=self.announced[topic], MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            found += [json.loads(m["Body"]) for m in batch]
            for m in batch:
                sqs.delete_message(QueueUrl=self.announced[topic], ReceiptHandle=m["ReceiptHandle"])
        return found

    def handler(self, job: str, jobs: Jobs) -> ModuleType:
        module = load_handler(job)
        module.jobs.use(jobs)
        return module


@pytest.fixture
def home(aws_cell: AwsCell) -> Home:
    """The home's bucket, ledgers and SNS topics beside the cell, and the jobs of both from their
    settings (the home's publisher is the one its settings open: SNS)."""
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    create_tables(aws_cell.client, "home-")
    sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
    topics, announced = {}, {}
    for topic in HOME_TOPICS:
        arn = sns.create_topic(Name=f"home-{topic.name.replace('.', '-')}")["TopicArn"]
        queue = sqs.create_queue(QueueName=f"read-{topic.name.replace('.', '-')}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
        sns.subscribe(
            TopicArn=arn,
            Protocol="sqs",
            Endpoint=queue_arn["QueueArn"],
            Attributes={"RawMessageDelivery": "true"},
        )
        topics[topic.name], announced[topic.name] = arn, queue
    aws_cell.clock.set(AFTER_GRACE)
    cell = bootstrap(CELL_SETTINGS, publisher=aws_cell.publisher, clock=aws_cell.clock)
    settings = dataclasses.replace(HOME_SETTINGS, notification_topics=json.dumps(topics))
    return Home(s3, cell, bootstrap(settings, clock=aws_cell.clock), announced)


def ingested(aws_cell: AwsCell, home: Home, jobs: Jobs | None = None) -> None:
    """The cell's usage metered, aggregated and published, and every statement ingested by the home."""
    metered_and_aggregated(aws_cell)
    published(aws_cell, home)
    event = {"Records": [notification("m1", *keys(home.s3))]}
    response = home.handler("ingest", jobs or home.jobs).handler(event, aws_cell.context)
    assert response["batchItemFailures"] == []


def emf(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    [line] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    return line


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


def test_a_cells_meter_meters_on_the_cells_ledgers_alone(aws_cell: AwsCell) -> None:
    # GIVEN a cell's ledgers as its stack makes them: no invoice ledger (the home issues)
    create_tables(aws_cell.client, "cell-")
    for table in set(TABLES) - set(CELL_TABLES):
        aws_cell.client.delete_table(TableName=physical_name("cell-", table))
    settings = AwsSettings(table_prefix="cell-", catalog=CATALOG, cell_name=CELL)
    meter = load_handler("meter")
    meter.jobs.use(bootstrap(settings, publisher=aws_cell.publisher, clock=aws_cell.clock))
    # WHEN a batch reaches its meter
    response = meter.handler(load_event("msk_mixed_batch.json"), aws_cell.context)
    # THEN nothing is handed back: the meter reads no ledger the cell lacks (the amendment window
    # is the home's to apply), and the usage is accepted
    assert response == {"batchItemFailures": []}
    assert list(DynamoStore(aws_cell.client, "cell-").scan("usage"))


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
    assert emf["statements_late"] == [0.0]
    assert sorted(map(str, DynamoStore(aws_cell.client, "home-").scan("aggregates"))) == before


def test_the_homes_rate_schedule_keeps_drafts_and_announces_spend_alerts_on_sns(
    aws_cell: AwsCell, home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the cell's November usage ingested by the home, in the middle of November
    ingested(aws_cell, home)
    aws_cell.clock.set(datetime(2026, 11, 20, tzinfo=UTC))
    capsys.readouterr()
    # WHEN the home's rate schedule fires (no stream event: a scheduler's)
    response = home.handler("rate", home.jobs).handler({}, aws_cell.context)
    # THEN each tenant's drafts stand in the home's charges ledger, and the one threshold crossed is
    # announced once on the alerts' SNS topic
    assert response == {"alerts": 1}
    assert emf(capsys)["spend_alerts_published"] == [1.0]
    drafts = list(DynamoStore(aws_cell.client, "home-").scan("charges"))
    assert drafts
    assert [alert["threshold"] for alert in home.messages(BILLING_ALERTS.name)] == ["0.05"]


def test_the_homes_close_issues_once_every_cell_reported_and_announces_the_invoices_on_sns(
    aws_cell: AwsCell, home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the cell's usage ingested by the home, and the cell's final markers for October and November
    ingested(aws_cell, home)
    capsys.readouterr()
    # WHEN the home's close schedule fires after November's grace
    response = home.handler("close", home.jobs).handler({}, aws_cell.context)
    # THEN October and November are issued (every cell reported them), none without a cell
    assert response == {"closed": ["2026-10", "2026-11"], "issued_without": [], "waiting": []}
    metrics = emf(capsys)
    assert metrics["silent_cells"] == [0.0] and metrics["periods_closed"] == [2.0]
    assert metrics["amendments_issued"] == [0.0]
    # AND the invoices are the ones the single-cell pipeline issues, each announced once on SNS
    invoices = {i["tenant"]: i for i in invoices_by_period(DynamoStore(aws_cell.client, "home-"))["2026-11"]}
    assert (invoices["org-1"]["total"], invoices["org-2"]["total"]) == ("10.10", "1997.28")
    announced = home.messages(BILLING_INVOICES.name)
    assert len(announced) == len({m["number"] for m in announced}) == 4  # October's flat fees too


def test_the_homes_close_waits_for_a_silent_cell_then_issues_without_it_and_alarms(
    aws_cell: AwsCell, home: Home, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a home with two cells, one of which (gcp-europe-west1) never publishes anything
    jobs = bootstrap(home.settings(cells=(CELL, "gcp-europe-west1")), clock=aws_cell.clock)
    ingested(aws_cell, home, jobs)
    close = home.handler("close", jobs)
    # WHEN its close runs past October's grace but inside the cell wait (PT6H by default)
    aws_cell.clock.set(datetime(2026, 11, 1, 2, tzinfo=UTC))
    capsys.readouterr()
    waiting = close.handler({}, aws_cell.context)
    # THEN nothing is issued, and the alarm's metric stays 0: the home is still waiting
    assert waiting == {"closed": [], "issued_without": [], "waiting": ["2026-10"]}
    assert emf(capsys)["silent_cells"] == [0.0]
    # WHEN it runs after November's deadline
    aws_cell.clock.set(AFTER_GRACE)
    issued = close.handler({}, aws_cell.context)
    # THEN both months are issued without the silent cell, which the metric counts and the log names
    assert issued == {"closed": ["2026-10", "2026-11"], "issued_without": ["gcp-europe-west1"], "waiting": []}
    assert emf(capsys)["silent_cells"] == [1.0]
    named = [json.loads(r.message) for r in caplog.records if r.name == "meterline.home"]
    assert {(line["period"], tuple(line["cells"]), line["issued_without_them"]) for line in named} == {
        ("2026-10", ("gcp-europe-west1",), False),
        ("2026-10", ("gcp-europe-west1",), True),
        ("2026-11", ("gcp-europe-west1",), True),
    }
