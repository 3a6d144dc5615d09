"""Every stack in stacks/ builds under mocks, with the resources a billing cell depends on."""

from __future__ import annotations

import json
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest

from infra.config import load_stack_config, read_stack_file, stack_names
from meterline.adapters.aws_lambda import AwsSettings
from meterline.pipeline.ledger import partial_sk
from meterline.topology import FUNCTIONS, TABLES, TOPICS, TriggerKind
from tests.infra.builds import key, named, of_type, policy_document, statement

TABLE = "aws:dynamodb/table:Table"
FUNCTION = "aws:lambda/function:Function"
MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping"
LEDGER_PREFIX = "ml-use1-c836-"
"""The cell name and the stack's nameSuffix (stacks/Pulumi.aws-us-east-1.yaml)."""


def test_every_stack_file_builds_and_reports_cost_inputs_in_the_agreed_shape(
    previews: dict[str, Any],
) -> None:
    # GIVEN every stack file  WHEN each is built offline  THEN cost_inputs names it and its expected load
    assert sorted(previews) == stack_names() and len(previews) >= 3
    for stack, build in previews.items():
        config = load_stack_config(stack, read_stack_file(stack))
        cost = build["outputs"]["cost_inputs"]
        assert (cost["stack"], cost["cloud"], cost["region"]) == (stack, config.cloud, config.region)
        assert cost["budget_usd_month"] == str(config.budget_usd_month)
        assert cost["usage"] == {
            "events_per_second": str(config.load.events_per_second),
            "avg_event_bytes": config.load.avg_event_bytes,
            "tenants": config.load.tenants,
            "retention_hours": {t.name: t.retention_hours for t in TOPICS},
        }
        json.dumps(cost)  # plain JSON values only


def test_cost_inputs_list_what_the_cell_creates(previews: dict[str, Any]) -> None:
    # the GCP and Azure cells have their own kinds (test_stacks_gcp/azure)
    aws_stacks = [build for stack, build in previews.items() if stack.startswith("aws-")]
    assert aws_stacks
    for build in aws_stacks:
        resources = build["outputs"]["cost_inputs"]["resources"]
        kinds = {item["kind"] for item in resources}
        # THEN every kind the cost model prices is there, and the counts match the resources built
        assert {
            "msk_serverless_cluster",
            "msk_partition",
            "dynamodb_table",
            "lambda_function",
            "scheduler_schedule",
            "kms_key",
            "cloudwatch_log_group",
            "cloudwatch_alarm",
            "cloudwatch_dashboard",
            "nat_gateway",
            "vpc_endpoint",
            "sqs_queue",
        } <= kinds
        partitions = {i["topic"]: i["count"] for i in resources if i["kind"] == "msk_partition"}
        assert partitions == {topic.name: topic.partitions for topic in TOPICS}
        [alarms] = [i["count"] for i in resources if i["kind"] == "cloudwatch_alarm"]
        assert alarms == len(of_type(build, "aws:cloudwatch/metricAlarm:MetricAlarm"))
        functions = {i["job"]: i for i in resources if i["kind"] == "lambda_function"}
        assert len(functions) == len(of_type(build, FUNCTION))
        for function in FUNCTIONS:
            assert functions[function.job]["memory_mb"] == function.memory_mb
            assert functions[function.job]["architecture"] == "arm64"
        endpoints = {i["type"]: i["count"] for i in resources if i["kind"] == "vpc_endpoint"}
        assert endpoints["Gateway"] + endpoints["Interface"] == len(
            of_type(build, "aws:ec2/vpcEndpoint:VpcEndpoint")
        )
        [nat] = [i["count"] for i in resources if i["kind"] == "nat_gateway"]
        assert nat == len(of_type(build, "aws:ec2/natGateway:NatGateway")) == 0
        [schedule] = [i for i in resources if i["kind"] == "scheduler_schedule"]
        assert schedule["invocations_per_month"] == 720  # hourly close, 30-day month


def test_ledgers_follow_the_topology_and_are_durable_and_encrypted(cell: dict[str, Any]) -> None:
    tables = {r["name"]: r["inputs"] for r in of_type(cell, TABLE)}
    assert sorted(tables) == sorted(table.name for table in TABLES)
    [key] = of_type(cell, "aws:kms/key:Key")
    for table in TABLES:
        inputs = tables[table.name]
        assert inputs["name"] == f"{LEDGER_PREFIX}{table.name}"
        assert inputs["billingMode"] == "PAY_PER_REQUEST"
        assert inputs["pointInTimeRecovery"] == {"enabled": True}
        assert inputs["deletionProtectionEnabled"] is True
        assert inputs["serverSideEncryption"]["kmsKeyArn"].startswith(
            "arn:aws:kms:us-east-1:123456789012:key/"
        )
        assert inputs["hashKey"] == table.partition_key and inputs.get("rangeKey") == table.sort_key
        assert inputs["streamEnabled"] is (table.stream is not None)
        if table.stream:
            assert inputs["streamViewType"] == table.stream.value
        assert "ttl" not in inputs  # nothing in the ledger expires
    assert key["inputs"]["enableKeyRotation"] is True


def test_kafka_is_serverless_with_iam_and_every_topic_is_ensured_on_deploy(cell: dict[str, Any]) -> None:
    [cluster] = of_type(cell, "aws:msk/serverlessCluster:ServerlessCluster")
    assert cluster["inputs"]["clientAuthentication"] == {"sasl": {"iam": {"enabled": True}}}
    assert len(cluster["inputs"]["vpcConfigs"][0]["subnetIds"]) >= 2
    [invocation] = of_type(cell, "aws:lambda/invocation:Invocation")
    request = json.loads(invocation["inputs"]["input"])
    assert request["bootstrap"].endswith(".kafka-serverless.us-east-1.amazonaws.com:9098")
    assert request["topics"] == [
        {"name": t.name, "partitions": t.partitions, "retention_ms": t.retention_hours * 3_600_000}
        for t in TOPICS
    ]


def test_each_function_runs_arm64_in_the_vpc_with_its_topology_sizes(cell: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        inputs = named(cell, FUNCTION, function.job)["inputs"]
        assert inputs["architectures"] == ["arm64"] and inputs["runtime"] in ("python3.13", "python3.12")
        assert (inputs["memorySize"], inputs["timeout"]) == (function.memory_mb, function.timeout_seconds)
        assert inputs["handler"] == "aws.handler" and len(inputs["vpcConfig"]["subnetIds"]) == 3
        assert inputs["loggingConfig"]["logGroup"] == f"/aws/lambda/ml-use1-{function.job}"
        settings = AwsSettings.from_env(inputs["environment"]["variables"], Path("package"))
        assert settings.table_prefix == LEDGER_PREFIX  # + table name: adapters.dynamodb
        assert settings.catalog == Path("package") / "catalog.yaml"


def test_triggers_report_partial_failures_and_dead_letter_after_bounded_retries(cell: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        if function.trigger is TriggerKind.SCHEDULE:
            schedule = named(cell, "aws:scheduler/schedule:Schedule", function.job)["inputs"]
            assert schedule["scheduleExpression"] == function.source
            assert schedule["target"]["deadLetterConfig"]["arn"].startswith("arn:aws:sqs:us-east-1:")
            continue
        mapping = named(cell, MAPPING, function.job)["inputs"]
        assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["batchSize"] == function.batch_size
        assert mapping["bisectBatchOnFunctionError"] is False
        # aggregate never skips usage: it retries while the stream holds the batch; others stop after 10
        retries = -1 if function.job == "aggregate" else 10
        assert mapping["maximumRetryAttempts"] == retries
        destination = mapping["destinationConfig"]["onFailure"]["destinationArn"]
        if function.trigger is TriggerKind.KAFKA:
            assert mapping["topics"] == [function.source]
            assert mapping["eventSourceArn"].startswith(
                "arn:aws:kafka:us-east-1:123456789012:cluster/ml-use1-kafka/"
            )
            assert mapping["provisionedPollerConfig"] == {"minimumPollers": 1, "maximumPollers": 4}
            assert destination.startswith("arn:aws:s3:::ml-use1-kafka-failures-")
        else:
            assert mapping["eventSourceArn"].endswith("/stream/2026-11-28T17:42:00.000")
            assert f":table/{LEDGER_PREFIX}{function.source}/" in mapping["eventSourceArn"]
            assert mapping["maximumRecordAgeInSeconds"] == (-1 if function.job == "aggregate" else 6 * 3600)
            assert destination == "arn:aws:sqs:us-east-1:123456789012:ml-use1-failures"
            pattern = json.loads(mapping["filterCriteria"]["filters"][0]["pattern"])
            assert pattern["eventName"] == ["INSERT"]
            if function.job == "rate":  # only partials reach rate: the prefix is the ledger's own key shape
                ((_, prefix),) = pattern["dynamodb"]["NewImage"]["sk"]["S"][0].items()
                assert partial_sk(0, "1").startswith(prefix) and not "head".startswith(prefix)


def test_each_role_reaches_only_the_tables_and_topics_its_function_uses(cell: dict[str, Any]) -> None:
    prefix = f"arn:aws:dynamodb:us-east-1:123456789012:table/{LEDGER_PREFIX}"
    for function in FUNCTIONS:
        document = policy_document(cell, function.job)
        granted = {s["Sid"]: s["Resource"] for s in document["Statement"]}
        assert granted.get("LedgerRead", []) == [prefix + name for name in function.reads]
        assert granted.get("LedgerWrite", []) == [prefix + name for name in function.writes]
        topics = [arn.rsplit("/", 1)[1] for arn in granted.get("KafkaPublish", [])]
        assert topics == list(function.publishes)
        if function.trigger is TriggerKind.TABLE_STREAM:
            [stream] = statement(document, "LedgerStream")["Resource"]
            assert stream.startswith(f"{prefix}{function.source}/stream/")
    meter = policy_document(cell, "meter")
    assert statement(meter, "KafkaConsume")["Resource"][0].split(":topic/")[1].endswith("/usage.events")
    assert statement(meter, "KafkaGroup")["Resource"][0].endswith("/ml-use1-meter")


def test_every_function_log_group_keeps_logs_for_the_configured_days(cell: dict[str, Any]) -> None:
    groups = {r["inputs"]["name"]: r["inputs"] for r in of_type(cell, "aws:cloudwatch/logGroup:LogGroup")}
    for function in of_type(cell, FUNCTION):
        group = groups[function["inputs"]["loggingConfig"]["logGroup"]]
        assert group["retentionInDays"] == 30 and group["kmsKeyId"].startswith("arn:aws:kms:")


def test_operations_alarm_on_errors_throttles_dead_letters_lag_and_ledger_throttles(
    cell: dict[str, Any],
) -> None:
    alarms = [r["inputs"] for r in of_type(cell, "aws:cloudwatch/metricAlarm:MetricAlarm")]
    assert {
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Lambda", "IteratorAge"),
        ("AWS/Kafka", "MaxOffsetLag"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/DynamoDB", "WriteThrottleEvents"),
        ("AWS/DynamoDB", "ReadThrottleEvents"),
    } <= {(a["namespace"], a["metricName"]) for a in alarms}
    lag = [a for a in alarms if a["metricName"] == "MaxOffsetLag"]
    assert lag[0]["threshold"] == 200 * 60 * 5 and lag[0]["dimensions"]["Consumer Group"] == "ml-use1-meter"
    # dead letters alarm when they happen, not through a daily storage metric
    assert all(a["period"] <= 300 for a in alarms)
    [dashboard] = of_type(cell, "aws:cloudwatch/dashboard:Dashboard")
    assert "ml-use1-meter" in dashboard["inputs"]["dashboardBody"]


def test_records_a_trigger_hands_back_drops_or_dead_letters_alarm_per_mapping(cell: dict[str, Any]) -> None:
    # GIVEN every trigger of the cell, each reporting its mapping's event counts
    mappings = of_type(cell, MAPPING)
    assert {m["name"] for m in mappings} == {
        f.job for f in FUNCTIONS if f.trigger is not TriggerKind.SCHEDULE
    }
    alarms = of_type(cell, "aws:cloudwatch/metricAlarm:MetricAlarm")
    for mapping in mappings:
        assert mapping["inputs"]["metricsConfig"] == {"metrics": ["EventCount"]}
        # THEN the mapping alarms on failed (partial batch responses too), dropped and dead-lettered records
        on_mapping = [a["inputs"] for a in alarms if key(mapping) in a["dependencies"]]
        assert {a["metricName"] for a in on_mapping} == {
            "FailedInvokeEventCount",
            "DroppedEventCount",
            "OnFailureDestinationDeliveredEventCount",
        }, mapping["name"]
        assert all(
            set(a["dimensions"]) == {"EventSourceMappingUUID"} and a["threshold"] == 0 for a in on_mapping
        )
    # AND meter's rejected and dead-lettered events alarm from its own metrics
    handler = {
        (a["inputs"]["namespace"], a["inputs"]["metricName"], a["inputs"]["dimensions"].get("service"))
        for a in alarms
    }
    assert {
        ("meterline", "events_rejected", "meter"),
        ("meterline", "dead_lettered", "meter"),
        ("meterline", "dead_lettered", "aggregate"),
    } <= handler


def test_the_dashboard_charts_handler_metrics_triggers_and_kafka_bytes_per_topic(
    cell: dict[str, Any],
) -> None:
    [dashboard] = of_type(cell, "aws:cloudwatch/dashboard:Dashboard")
    widgets = {
        w["properties"]["title"]: w["properties"]["metrics"]
        for w in json.loads(dashboard["inputs"]["dashboardBody"])["widgets"]
    }
    # MSK Serverless publishes BytesInPerSec per topic: one line per topic of the cell
    assert widgets["Kafka bytes in per topic"] == [
        ["AWS/Kafka", "BytesInPerSec", "Cluster Name", "ml-use1-kafka", "Topic", t.name] for t in TOPICS
    ]
    assert ["meterline", "events_rejected", "service", "meter"] in widgets["meter outcomes"]
    assert ["meterline", "usage_aggregated", "service", "aggregate"] in widgets["job results"]
    triggers = widgets["triggers: failed, dropped, sent to the on-failure destination"]
    assert {line[1] for line in triggers} == {
        "FailedInvokeEventCount",
        "DroppedEventCount",
        "OnFailureDestinationDeliveredEventCount",
    }


def test_components_are_typed_and_parent_their_children(cell: dict[str, Any]) -> None:
    tokens = {r["type"] for r in cell["resources"] if r["type"].startswith("meterline:")}
    assert tokens == {
        "meterline:aws:Network",
        "meterline:aws:Kafka",
        "meterline:aws:Ledgers",
        "meterline:aws:Functions",
        "meterline:aws:Operations",
    }


@pytest.mark.parametrize("stack", [s for s in stack_names() if s.startswith("aws-")])
def test_every_role_touching_an_encrypted_table_may_use_its_key_for_what_it_does(
    previews: dict[str, Any], stack: str
) -> None:
    # GIVEN every table of the stack with its key, and every role policy
    build = previews[stack]
    keys = {
        t["inputs"]["name"]: t["inputs"]["serverSideEncryption"]["kmsKeyArn"] for t in of_type(build, TABLE)
    }
    for role in of_type(build, "aws:iam/rolePolicy:RolePolicy"):
        document = json.loads(role["inputs"]["policy"])
        allowed = [s for s in document["Statement"] if s["Effect"] == "Allow"]
        for granted in allowed:
            # WHEN a statement reaches a table (or its stream)
            actions = [a for a in granted["Action"] if a.startswith("dynamodb:")]
            for resource in granted["Resource"] if actions else []:
                table = resource.split(":table/", 1)[1].split("/", 1)[0]
                writes = any(a.split(":")[1] in WRITE_ACTIONS for a in actions)
                needed = ["kms:Decrypt", "kms:GenerateDataKey"] if writes else ["kms:Decrypt"]
                # THEN the same role may use that table's key for it
                for action in needed:
                    assert any(
                        keys[table] in k["Resource"] and any(fnmatch(action, a) for a in k["Action"])
                        for k in allowed
                    ), f"{stack} role {role['name']}: {action} on the key of {table}"


WRITE_ACTIONS = {"PutItem", "UpdateItem", "BatchWriteItem", "DeleteItem", "TransactWriteItems"}
