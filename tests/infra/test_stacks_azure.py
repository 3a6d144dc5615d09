"""The Azure stacks build under mocks with the resources a billing cell depends on."""

from __future__ import annotations

from typing import Any

import pytest

from infra.components.azure.functions import flex_memory, ncrontab
from infra.components.azure.roles import EVENTHUB_RECEIVER, EVENTHUB_SENDER, TABLE_CONTRIBUTOR, TABLE_READER
from infra.config import ConfigError, EventHubs, load_stack_config, read_stack_file, stack_names
from meterline.topology import FUNCTIONS, TABLES, TOPICS, TriggerKind
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
    assert set(hubs) == {t.name for t in TOPICS} | {"ledger-usage", "ledger-aggregates"}
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
        if function.trigger is TriggerKind.SCHEDULE:
            assert settings["METERLINE_CLOSE_SCHEDULE"] == "0 15 * * * *"
    assert len(identities) == len(FUNCTIONS)


def test_data_roles_are_scoped_to_single_tables_and_hubs_as_the_topology_says(
    azure: tuple[str, dict[str, Any]],
) -> None:
    _, build = azure
    assignments = [r["inputs"] for r in of_type(build, ASSIGNMENT)]
    by_role: dict[str, list[str]] = {}
    for assignment in assignments:
        by_role.setdefault(assignment["roleDefinitionId"].rsplit("/", 1)[-1], []).append(assignment["scope"])
    tables = [scope.rsplit("/", 1)[-1] for scope in by_role[TABLE_CONTRIBUTOR]]
    assert sorted(tables) == sorted(t for f in FUNCTIONS for t in f.writes)
    reads_only = [t for f in FUNCTIONS for t in f.reads if t not in f.writes]
    assert sorted(scope.rsplit("/", 1)[-1] for scope in by_role.get(TABLE_READER, [])) == sorted(reads_only)
    received = sorted(scope.rsplit("/", 1)[-1] for scope in by_role[EVENTHUB_RECEIVER])
    assert received == sorted(["usage.events", "ledger-usage", "ledger-aggregates"])
    sent = sorted(scope.rsplit("/", 1)[-1] for scope in by_role[EVENTHUB_SENDER])
    assert sent == sorted([*(t for f in FUNCTIONS for t in f.publishes), "ledger-usage", "ledger-aggregates"])


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
