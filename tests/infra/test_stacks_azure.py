"""The Azure stacks build under mocks with the resources a billing cell depends on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.components.azure.functions import flex_memory, ncrontab, tables_read
from infra.components.azure.ledgers import TABLE_PREFIX
from infra.components.azure.roles import EVENTHUB_RECEIVER, EVENTHUB_SENDER, TABLE_CONTRIBUTOR, TABLE_READER
from infra.config import ConfigError, EventHubs, load_stack_config, read_stack_file, stack_names
from meterline.adapters.azure_functions import HUB_TRIGGERS, TIMER_SCHEDULES, AzureSettings
from meterline.topology import CLOSE, FUNCTIONS, TABLES, TOPICS, USAGE_EVENTS
from tests.infra.builds import of_type

AZURE_STACKS = [stack for stack in stack_names() if stack.startswith("azure-")]
APP = "azure-native:web:WebApp"
ASSIGNMENT = "azure-native:authorization:RoleAssignment"


@pytest.fixture(params=AZURE_STACKS)
def azure(request: pytest.FixtureRequest, previews: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return request.param, previews[request.param]


def test_there_are_two_azure_cells() -> None:
    assert AZURE_STACKS == ["azure-eastus", "azure-westeurope"]


def test_cost_inputs_name_the_azure_cell_and_what_it_creates(azure: tuple[str, dict[str, Any]]) -> None:
    stack, build = azure
    config = load_stack_config(stack, read_stack_file(stack))
    cost = build["outputs"]["cost_inputs"]
    assert (cost["stack"], cost["cloud"], cost["region"]) == (stack, "azure", config.region)
    kinds = [item["kind"] for item in cost["resources"]]
    assert kinds.count("function_app_flex") == len(of_type(build, APP)) == len(FUNCTIONS)
    assert kinds.count("storage_table") == len(of_type(build, "azure-native:storage:Table")) == len(TABLES)
    [alerts] = [i["count"] for i in cost["resources"] if i["kind"] == "monitor_metric_alert"]
    assert alerts == len(of_type(build, "azure-native:monitor:MetricAlert"))


def test_one_hub_per_topic_with_topology_partitions_and_retention_capped_at_the_tier(
    azure: tuple[str, dict[str, Any]],
) -> None:
    _, build = azure
    hubs = {
        r["inputs"]["eventHubName"]: r["inputs"] for r in of_type(build, "azure-native:eventhub:EventHub")
    }
    assert set(hubs) == {t.name for t in TOPICS}
    for topic in TOPICS:
        assert hubs[topic.name]["partitionCount"] == topic.partitions
        retention = hubs[topic.name]["retentionDescription"]["retentionTimeInHours"]
        assert retention == min(topic.retention_hours, 168)
    [namespace] = of_type(build, "azure-native:eventhub:Namespace")
    assert (
        namespace["inputs"]["sku"]["name"] == "Standard" and namespace["inputs"]["disableLocalAuth"] is True
    )
    assert build["outputs"]["retention_capped_hours"] == {
        t.name: 168 for t in TOPICS if t.retention_hours > 168
    }


def test_each_job_is_a_flex_consumption_app_with_its_own_identity(azure: tuple[str, dict[str, Any]]) -> None:
    _, build = azure
    apps = {r["name"]: r["inputs"] for r in of_type(build, APP)}
    plans = {r["name"]: r["inputs"] for r in of_type(build, "azure-native:web:AppServicePlan")}
    identities = set()
    for function in FUNCTIONS:
        app = apps[function.job]
        config = app["functionAppConfig"]
        assert plans[function.job]["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
        assert config["runtime"]["name"] == "python"
        assert config["scaleAndConcurrency"]["instanceMemoryMB"] == flex_memory(function.memory_mb)
        assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
        identities.update(app["identity"]["userAssignedIdentities"])
        settings = {s["name"]: s["value"] for s in app["siteConfig"]["appSettings"]}
        assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
        # the settings the functions read are there, under the names the code reads
        read = AzureSettings.from_env(settings, Path("package"))
        assert read.table_prefix == TABLE_PREFIX and read.tables_endpoint.startswith("https://")
        assert bool(read.kafka_bootstrap) == bool(function.publishes)
        # AND the Event Hubs trigger's identity connection, for the apps that have one
        assert ("METERLINE_EVENTHUB__fullyQualifiedNamespace" in settings) == (function.job in HUB_TRIGGERS)
    assert len(identities) == len(FUNCTIONS)


def test_data_roles_are_scoped_to_single_tables_and_hubs_as_the_functions_use_them(
    azure: tuple[str, dict[str, Any]],
) -> None:
    _, build = azure
    assignments = [r["inputs"] for r in of_type(build, ASSIGNMENT)]
    by_role: dict[str, list[str]] = {}
    for assignment in assignments:
        by_role.setdefault(assignment["roleDefinitionId"].rsplit("/", 1)[-1], []).append(assignment["scope"])

    def names(role: str) -> list[str]:
        return sorted(scope.rsplit("/", 1)[-1] for scope in by_role.get(role, []))

    tables = [TABLE_PREFIX + t for f in FUNCTIONS for t in f.writes]
    assert names(TABLE_CONTRIBUTOR) == sorted(tables)
    reads_only = [TABLE_PREFIX + t for f in FUNCTIONS for t in set(tables_read(f)) - set(f.writes)]
    assert names(TABLE_READER) == sorted(reads_only)
    assert TABLE_PREFIX + "usage" in reads_only  # aggregate joins each record with meter's usage entity
    # meter and aggregate receive from usage.events only; rate and close, on timers, receive nothing
    assert names(EVENTHUB_RECEIVER) == [USAGE_EVENTS.name, USAGE_EVENTS.name]
    assert names(EVENTHUB_SENDER) == sorted(t for f in FUNCTIONS for t in f.publishes)


def test_usage_events_has_the_aggregate_consumer_group_and_no_hub_stands_in_for_a_table_stream(
    azure: tuple[str, dict[str, Any]],
) -> None:
    _, build = azure
    groups = [r["inputs"] for r in of_type(build, "azure-native:eventhub:ConsumerGroup")]
    assert [(g["eventHubName"], g["consumerGroupName"]) for g in groups] == [(USAGE_EVENTS.name, "aggregate")]


def test_the_ledger_account_is_key_vault_encrypted_zone_redundant_and_locked(
    azure: tuple[str, dict[str, Any]],
) -> None:
    _, build = azure
    [ledger] = [
        r["inputs"] for r in of_type(build, "azure-native:storage:StorageAccount") if r["name"] == "ledger"
    ]
    assert ledger["sku"]["name"] == "Standard_ZRS"
    assert ledger["encryption"]["keySource"] == "Microsoft.Keyvault"
    assert ledger["allowSharedKeyAccess"] is False
    [lock] = of_type(build, "azure-native:authorization:ManagementLockByScope")
    assert lock["inputs"]["level"] == "CanNotDelete"


def test_eventbridge_cron_becomes_six_field_ncrontab_and_memory_rounds_up_to_a_flex_size() -> None:
    assert ncrontab("cron(15 * * * ? *)") == "0 15 * * * *"
    assert ncrontab(CLOSE.source) == TIMER_SCHEDULES["close"]  # close runs when it runs on AWS
    assert [flex_memory(mb) for mb in (256, 1024, 1769, 2048, 3000)] == [512, 2048, 2048, 2048, 4096]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "azure-native:location",
            "westus2",
            "azure-native:location is westus2 but the stack name says eastus",
        ),
        (
            "meterline:eventHubs",
            '{"sku": "Basic"}',
            "meterline:eventHubs.sku must be one of Standard, Premium",
        ),
        (
            "meterline:eventHubs",
            '{"capacity": 2, "maximumThroughputUnits": 1}',
            "maximumThroughputUnits must be at least 2",
        ),
        (
            "meterline:logRetentionDays",
            "7",
            "meterline:logRetentionDays must be 30 to 730 days (Log Analytics), not 7",
        ),
        ("meterline:network", '{"cidr": "10.0.0.0/16"}', "meterline:network does not apply to azure cells"),
        (
            "meterline:managedKafka",
            '{"vcpus": 3}',
            "meterline:managedKafka applies to gcp cells only, not azure",
        ),
    ],
)
def test_azure_config_errors_name_the_stack_and_the_key(key: str, value: str, message: str) -> None:
    raw = {**read_stack_file("azure-eastus"), key: value}
    with pytest.raises(ConfigError, match=r"^stack azure-eastus: ") as raised:
        load_stack_config("azure-eastus", raw)
    assert message in str(raised.value)


def test_azure_cells_get_their_region_codes_and_event_hubs_settings() -> None:
    config = load_stack_config("azure-westeurope", read_stack_file("azure-westeurope"))
    assert config.cell == "ml-weu"
    assert config.event_hubs == EventHubs("Standard", 1, 4) and config.event_hubs.max_retention_hours == 168
