"""The GCP stacks build under mocks with the resources a billing cell depends on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.components.gcp.functions import FIRESTORE_CREATED, KAFKA_DRAINS, PUBSUB_PUBLISHED, unix_cron
from infra.components.gcp.ledgers import collection
from infra.config import ConfigError, ManagedKafka, load_stack_config, read_stack_file, stack_names
from meterline.adapters.gcp_functions import GcpSettings
from meterline.topology import FUNCTIONS, TABLES, TOPICS, TriggerKind
from tests.infra.builds import named, of_type

GCP_STACKS = [stack for stack in stack_names() if stack.startswith("gcp-")]
FUNCTION = "gcp:cloudfunctionsv2/function:Function"


@pytest.fixture(params=GCP_STACKS)
def gcp(request: pytest.FixtureRequest, previews: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return request.param, previews[request.param]


def test_there_are_two_gcp_cells() -> None:
    assert GCP_STACKS == ["gcp-europe-west1", "gcp-us-central1"]


def test_cost_inputs_name_the_gcp_cell_and_what_it_creates(gcp: tuple[str, dict[str, Any]]) -> None:
    stack, build = gcp
    config = load_stack_config(stack, read_stack_file(stack))
    cost = build["outputs"]["cost_inputs"]
    assert (cost["stack"], cost["cloud"], cost["region"]) == (stack, "gcp", config.region)
    kinds = [item["kind"] for item in cost["resources"]]
    assert kinds.count("cloud_run_function") == len(of_type(build, FUNCTION)) == len(FUNCTIONS)
    assert kinds.count("firestore_collection") == len(TABLES)
    topics = {i["topic"]: i["partitions"] for i in cost["resources"] if i["kind"] == "managed_kafka_topic"}
    assert topics == {topic.name: topic.partitions for topic in TOPICS}
    [alerts] = [i["count"] for i in cost["resources"] if i["kind"] == "monitoring_alert_policy"]
    assert alerts == len(of_type(build, "gcp:monitoring/alertPolicy:AlertPolicy"))


def test_kafka_topics_follow_the_topology_and_usage_is_bridged_to_pubsub(
    gcp: tuple[str, dict[str, Any]],
) -> None:
    _, build = gcp
    topics = {r["inputs"]["topicId"]: r["inputs"] for r in of_type(build, "gcp:managedkafka/topic:Topic")}
    for topic in TOPICS:
        assert topics[topic.name]["partitionCount"] == topic.partitions
        assert topics[topic.name]["configs"]["retention.ms"] == str(topic.retention_hours * 3_600_000)
    [connector] = of_type(build, "gcp:managedkafka/connector:Connector")
    assert connector["inputs"]["configs"]["topics"] == "usage.events"
    assert connector["inputs"]["configs"]["connector.class"].endswith("CloudPubSubSinkConnector")
    [cluster] = of_type(build, "gcp:managedkafka/cluster:Cluster")
    assert cluster["inputs"]["gcpConfig"]["kmsKey"].endswith(
        "/cryptoKeys/" + cluster["inputs"]["clusterId"][:-6] + "-ledger"
    )


def test_the_ledger_is_one_durable_cmek_firestore_database_where_nothing_expires(
    gcp: tuple[str, dict[str, Any]],
) -> None:
    _, build = gcp
    [database] = of_type(build, "gcp:firestore/database:Database")
    inputs = database["inputs"]
    assert inputs["pointInTimeRecoveryEnablement"] == "POINT_IN_TIME_RECOVERY_ENABLED"
    assert inputs["deleteProtectionState"] == "DELETE_PROTECTION_ENABLED"
    assert "/cryptoKeys/" in inputs["cmekConfig"]["kmsKeyName"]
    assert of_type(build, "gcp:firestore/field:Field") == []  # no TTL policy


def test_each_job_has_its_own_account_and_the_trigger_its_topology_entry_asks_for(
    gcp: tuple[str, dict[str, Any]],
) -> None:
    _, build = gcp
    functions = {r["name"]: r["inputs"] for r in of_type(build, FUNCTION)}
    accounts = {f["serviceConfig"]["serviceAccountEmail"] for f in functions.values()}
    assert len(accounts) == len(FUNCTIONS)
    for function in FUNCTIONS:
        inputs = functions[function.job]
        assert inputs["serviceConfig"]["availableMemory"] == f"{function.memory_mb}Mi"
        trigger = inputs.get("eventTrigger")
        if function.job in KAFKA_DRAINS:
            assert trigger is None
        elif function.trigger is TriggerKind.KAFKA:
            assert trigger["eventType"] == PUBSUB_PUBLISHED and trigger["pubsubTopic"].endswith(
                "usage-events"
            )
        elif function.trigger is TriggerKind.TABLE_STREAM:
            assert trigger["eventType"] == FIRESTORE_CREATED
            assert {
                "attribute": "document",
                "value": f"{collection(function.source)}/{{entry}}",
                "operator": "match-path-pattern",
            } in trigger["eventFilters"]
        else:
            assert trigger is None
    jobs = {job["name"]: job["inputs"] for job in of_type(build, "gcp:cloudscheduler/job:Job")}
    assert sorted(jobs) == ["aggregate", "close"]
    assert jobs["close"]["schedule"] == "15 * * * *"
    assert jobs["close"]["httpTarget"]["oidcToken"]["serviceAccountEmail"].startswith(
        jobs["close"]["name"][:-6]
    )


def test_aggregate_drains_usage_events_every_minute_on_one_instance(gcp: tuple[str, dict[str, Any]]) -> None:
    # GIVEN a GCP cell
    _, build = gcp
    functions = {r["name"]: r["inputs"] for r in of_type(build, FUNCTION)}
    aggregate = functions["aggregate"]
    [schedule] = [
        j["inputs"] for j in of_type(build, "gcp:cloudscheduler/job:Job") if j["name"] == "aggregate"
    ]
    # THEN Cloud Scheduler calls it every minute, without retries, within its timeout
    assert schedule["schedule"] == "* * * * *"
    assert schedule["retryConfig"] == {"retryCount": 0}
    service = aggregate["serviceConfig"]
    assert schedule["attemptDeadline"] == f"{int(service['timeoutSeconds'])}s"
    # AND it runs on one instance, reads Kafka in its own group, within a budget shorter than its timeout
    assert service["maxInstanceCount"] == 1 and service["maxInstanceRequestConcurrency"] == 1
    settings = GcpSettings.from_env(service["environmentVariables"], Path("package"))
    assert settings.consumer_group == "aggregate"
    assert settings.kafka_bootstrap == build["outputs"]["kafka_bootstrap_servers"]
    assert settings.drain_seconds < service["timeoutSeconds"]
    # AND no Eventarc trigger fires on usage documents, and no Pub/Sub topic feeds aggregate
    triggers = [f.get("eventTrigger") or {} for f in functions.values()]
    assert not any(
        f"{collection('usage')}/{{entry}}" in str(t.get("eventFilters"))
        for t in triggers
        if t.get("eventType") == FIRESTORE_CREATED
    )
    assert [t["pubsubTopic"] for t in triggers if t.get("eventType") == PUBSUB_PUBLISHED] == [
        build["outputs"]["pubsub_bridges"]["usage.events"]
    ]
    assert of_type(build, "gcp:pubsub/subscription:Subscription") == []


def test_the_pubsub_sink_publishes_each_records_kafka_position(gcp: tuple[str, dict[str, Any]]) -> None:
    # meter must record the Kafka position as the delivery: aggregate's join matches records by it
    _, build = gcp
    [connector] = of_type(build, "gcp:managedkafka/connector:Connector")
    assert connector["inputs"]["configs"]["metadata.publish"] == "true"


def test_ledger_and_kafka_grants_are_conditioned_on_the_cells_own_resources(
    gcp: tuple[str, dict[str, Any]],
) -> None:
    _, build = gcp
    grants = of_type(build, "gcp:projects/iAMMember:IAMMember")
    ledger = [g for g in grants if g["inputs"]["role"].startswith("roles/datastore.")]
    assert len(ledger) == len(FUNCTIONS)
    for grant in ledger:
        assert grant["inputs"]["condition"]["expression"].endswith(
            "/databases/" + build["outputs"]["firestore_database"].rsplit("/", 1)[-1] + '"'
        )
    kafka = [g for g in grants if g["inputs"]["role"] == "roles/managedkafka.client"]
    assert sorted(g["name"] for g in kafka) == sorted(
        f"{f.job}-kafka" for f in FUNCTIONS if f.publishes or f.job in KAFKA_DRAINS
    )
    assert "aggregate-kafka" in {g["name"] for g in kafka}
    for grant in kafka:
        assert grant["inputs"]["condition"]["expression"].startswith('resource.name.startsWith("')


def test_eventbridge_cron_becomes_five_field_cron() -> None:
    assert unix_cron("cron(15 * * * ? *)") == "15 * * * *"
    with pytest.raises(ValueError, match="not an EventBridge cron"):
        unix_cron("rate(1 hour)")


def test_function_sources_are_content_addressed(gcp: tuple[str, dict[str, Any]]) -> None:
    _, build = gcp
    objects = {
        r["name"]: r["inputs"]["name"] for r in of_type(build, "gcp:storage/bucketObject:BucketObject")
    }
    assert sorted(objects) == sorted(f.job for f in FUNCTIONS)
    assert all(name.startswith(f"{job}/") and name.endswith(".zip") for job, name in objects.items())
    assert (
        named(build, "gcp:storage/bucket:Bucket", "sources")["inputs"]["publicAccessPrevention"] == "enforced"
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("gcp:region", "us-east1", "gcp:region is us-east1 but the stack name says us-central1"),
        ("gcp:project", None, "gcp:project is missing"),
        ("meterline:managedKafka", '{"vcpus": 2}', "meterline:managedKafka.vcpus must be at least 3, not 2"),
        (
            "meterline:managedKafka",
            '{"vcpus": 3, "memoryGib": 30}',
            "must be 1 to 8 GiB per vCPU (3 to 24), not 30",
        ),
        ("meterline:network", '{"cidr": "10.0.0.0/28"}', "meterline:network.cidr must be /24 or larger"),
        (
            "meterline:kafkaPollers",
            '{"minimum": 1}',
            "meterline:kafkaPollers applies to aws cells only, not gcp",
        ),
        ("meterline:logRetentionDays", "30", "meterline:logRetentionDays does not apply to gcp cells"),
    ],
)
def test_gcp_config_errors_name_the_stack_and_the_key(key: str, value: str | None, message: str) -> None:
    raw = read_stack_file("gcp-us-central1")
    if value is None:
        raw.pop(key)
    else:
        raw[key] = value
    with pytest.raises(ConfigError, match=r"^stack gcp-us-central1: ") as raised:
        load_stack_config("gcp-us-central1", raw)
    assert message in str(raised.value)


def test_gcp_cells_get_short_region_codes() -> None:
    config = load_stack_config("gcp-europe-west1", read_stack_file("gcp-europe-west1"))
    assert (config.cell, config.project, config.managed_kafka) == (
        "ml-euw1",
        "meterline-billing-prod",
        ManagedKafka(3, 3),
    )
