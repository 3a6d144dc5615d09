"""What every stack's preview sets in each function's environment round-trips through the cloud's one
settings schema (the class infra renders with ``to_env`` and the function reads with ``from_env``),
every variable of ours it sets is one the function reads, and the settings name what the stack builds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.components.azure.functions import TRIGGER_CONNECTION
from infra.config import load_stack_config, read_stack_file, stack_names
from meterline.adapters.aws_lambda import AwsSettings
from meterline.adapters.azure_functions import HUB_TRIGGERS, AzureSettings
from meterline.adapters.firestore_layout import collection_name
from meterline.adapters.gcp_functions import GcpSettings
from meterline.settings import CellSettings, SettingsError
from meterline.topology import FUNCTIONS, TABLES
from tests.infra.builds import of_type

STACKS = stack_names()
PACKAGE = Path("package")
OURS = ("METERLINE_", "GOOGLE_CLOUD_PROJECT", "FIRESTORE_")
"""The variables a function's schema owns; the rest belong to the runtime or its host..."""
HOSTS = (f"{TRIGGER_CONNECTION}__",)
"""...as the Functions host reads the Event Hubs trigger's connection (``<connection>__*``)."""
SCHEMAS: dict[str, type[CellSettings]] = {"aws": AwsSettings, "gcp": GcpSettings, "azure": AzureSettings}


def lambda_environments(build: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        r["name"]: r["inputs"]["environment"]["variables"]
        for r in of_type(build, "aws:lambda/function:Function")
    }


def gcp_environments(build: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        r["name"]: r["inputs"]["serviceConfig"]["environmentVariables"]
        for r in of_type(build, "gcp:cloudfunctionsv2/function:Function")
    }


def app_settings(build: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        r["name"]: {s["name"]: s["value"] for s in r["inputs"]["siteConfig"]["appSettings"]}
        for r in of_type(build, "azure-native:web:WebApp")
    }


ENVIRONMENTS: dict[str, Callable[[dict[str, Any]], dict[str, dict[str, str]]]] = {
    "aws": lambda_environments,
    "gcp": gcp_environments,
    "azure": app_settings,
}


def cloud_of(stack: str) -> str:
    return stack.split("-", 1)[0]


@pytest.mark.parametrize("stack", STACKS)
def test_every_functions_environment_round_trips_through_its_clouds_settings_schema(
    previews: dict[str, Any], stack: str
) -> None:
    # GIVEN a stack built under mocks, and its cloud's settings schema
    cloud = cloud_of(stack)
    schema, environments = SCHEMAS[cloud], ENVIRONMENTS[cloud](previews[stack])
    for function in FUNCTIONS:
        environment = environments[function.job]
        ours = {
            name: value
            for name, value in environment.items()
            if name.startswith(OURS) and not name.startswith(HOSTS)
        }
        # WHEN the function reads what the stack sets
        settings = schema.from_env(environment, PACKAGE)
        # THEN every variable of ours the stack sets is one the schema reads (none set and never read)
        assert set(ours) <= schema.variables(), set(ours) - schema.variables()
        # AND writing the settings back gives exactly those variables: nothing is lost or made up
        assert settings.to_env() == {**ours, "METERLINE_CATALOG": str(PACKAGE / "catalog.yaml")}
        assert settings.catalog == PACKAGE / "catalog.yaml"
        # AND the function knows the broker exactly when it publishes or reads a topic itself
        drains = cloud == "gcp" and bool(getattr(settings, "consumer_group"))  # noqa: B009
        assert bool(settings.kafka_bootstrap) == (bool(function.publishes) or drains), function.job
        if settings.kafka_bootstrap:
            assert settings.kafka_bootstrap == previews[stack]["outputs"]["kafka_bootstrap_servers"]


@pytest.mark.parametrize("stack", STACKS)
def test_a_required_setting_the_stack_would_forget_fails_the_deployment_not_the_function(stack: str) -> None:
    # GIVEN the schema a stack's functions read
    schema = SCHEMAS[cloud_of(stack)]
    required = [field.name for field in dataclasses.fields(schema) if field.default is dataclasses.MISSING]
    # THEN the ledger prefix is a constructor argument infra must give (GCP's functions once failed
    # on their first call because infra never set it), and giving it empty is refused too
    assert required == ["table_prefix"]
    with pytest.raises(TypeError):
        schema()  # type: ignore[call-arg]
    with pytest.raises(SettingsError, match="METERLINE_TABLE_PREFIX"):
        schema.from_env({"METERLINE_TABLES_ENDPOINT": "https://t"}, PACKAGE)


@pytest.mark.parametrize("stack", [stack for stack in STACKS if cloud_of(stack) == "aws"])
def test_each_lambda_finds_the_stacks_tables(previews: dict[str, Any], stack: str) -> None:
    build = previews[stack]
    tables = {r["inputs"]["name"] for r in of_type(build, "aws:dynamodb/table:Table")}
    for function in FUNCTIONS:
        settings = AwsSettings.from_env(lambda_environments(build)[function.job], PACKAGE)
        assert {settings.table_prefix + table.name for table in TABLES} == tables


@pytest.mark.parametrize("stack", [stack for stack in STACKS if cloud_of(stack) == "gcp"])
def test_each_cloud_run_function_finds_the_stacks_database_and_collections(
    previews: dict[str, Any], stack: str
) -> None:
    # GIVEN a GCP stack built under mocks: its database, and the collections it configures by name
    build = previews[stack]
    config = load_stack_config(stack, read_stack_file(stack))
    [database] = of_type(build, "gcp:firestore/database:Database")
    named_collections = {
        r["inputs"]["collection"]
        for token in ("gcp:firestore/field:Field", "gcp:firestore/index:Index")
        for r in of_type(build, token)
    }
    triggered = {
        f["inputs"]["eventTrigger"]["eventFilters"][1]["value"].removesuffix("/{entry}")
        for f in of_type(build, "gcp:cloudfunctionsv2/function:Function")
        if (f["inputs"].get("eventTrigger") or {}).get("eventFilters")
    }
    for function in FUNCTIONS:
        settings = GcpSettings.from_env(gcp_environments(build)[function.job], PACKAGE)
        # THEN it opens the cell's database in the cell's project
        assert (settings.project, settings.database) == (config.project, database["inputs"]["name"])
        # AND the collections it would use are the ones the stack names in indexes and triggers
        collections = {collection_name(settings.table_prefix, table.name) for table in TABLES}
        assert named_collections | triggered <= collections
    assert named_collections and triggered


@pytest.mark.parametrize("stack", [stack for stack in STACKS if cloud_of(stack) == "azure"])
def test_each_azure_app_finds_the_stacks_tables_and_its_trigger_connection(
    previews: dict[str, Any], stack: str
) -> None:
    build = previews[stack]
    for function in FUNCTIONS:
        environment = app_settings(build)[function.job]
        settings = AzureSettings.from_env(environment, PACKAGE)
        assert settings.tables_endpoint == build["outputs"]["table_endpoint"]
        hub = "METERLINE_EVENTHUB__fullyQualifiedNamespace" in environment
        assert hub == (function.job in HUB_TRIGGERS)


@pytest.mark.parametrize("stack", STACKS)
def test_the_cells_exported_settings_are_what_its_functions_read(
    previews: dict[str, Any], stack: str
) -> None:
    # GIVEN the settings a stack exports for clients of the cell (meterline smoke)
    build = previews[stack]
    exported = build["outputs"]["cell_settings"]
    cloud = cloud_of(stack)
    environments = ENVIRONMENTS[cloud](build)
    schema = SCHEMAS[cloud]
    # THEN each is set to the same value in every function that sets it, broker included where used
    platform = {
        field.metadata["env"] for field in dataclasses.fields(schema) if field.metadata.get("platform")
    }
    for name, value in exported.items():
        if name in platform:
            continue
        setting_in = [env[name] for env in environments.values() if name in env]
        assert setting_in and set(setting_in) == {value}, name
    # AND the cloud's settings schema reads them, broker included
    parsed = schema.from_env(exported, PACKAGE)
    assert parsed.kafka_bootstrap == build["outputs"]["kafka_bootstrap_servers"]
