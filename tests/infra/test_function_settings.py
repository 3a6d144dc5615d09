"""What every stack's preview sets in each function's environment is what the function's own
`Settings.from_env` reads, and names the ledgers the stack creates (Azure: test_stacks_azure.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.config import load_stack_config, read_stack_file, stack_names
from meterline.adapters import aws_lambda, azure_functions, gcp_functions
from meterline.adapters.firestore_layout import collection_name
from meterline.topology import CELL_FUNCTIONS, CELL_TABLES, TriggerKind
from tests.infra.builds import of_type

AWS_STACKS = [stack for stack in stack_names() if stack.startswith("aws-")]
GCP_STACKS = [stack for stack in stack_names() if stack.startswith("gcp-")]
STACKS = [stack for stack in stack_names() if not stack.startswith("home-")]
"""The cells' stacks (a home's functions read no cell's settings: test_home.py)."""
SET_BY_THE_PLATFORM = {"aws": ("AWS_REGION",)}
"""What the runtime sets in every function's environment (Lambda: the function's region)."""
PACKAGE = Path("package")


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


@pytest.mark.parametrize("stack", AWS_STACKS)
def test_each_lambda_reads_its_environment_and_finds_the_stacks_tables(
    previews: dict[str, Any], stack: str
) -> None:
    # GIVEN an AWS stack built under mocks
    build = previews[stack]
    tables = {r["inputs"]["name"] for r in of_type(build, "aws:dynamodb/table:Table")}
    environments = lambda_environments(build)
    for function in CELL_FUNCTIONS:
        # WHEN the function reads what the stack sets in its environment
        settings = aws_lambda.Settings.from_env(environments[function.job], PACKAGE)
        # THEN every table it names is one the stack creates, and it knows the broker when it needs it
        assert {settings.table_prefix + table.name for table in CELL_TABLES} == tables
        needs_kafka = bool(function.publishes) or function.trigger is TriggerKind.KAFKA
        assert bool(settings.kafka_bootstrap) == needs_kafka
        if needs_kafka:
            assert settings.kafka_bootstrap == build["outputs"]["kafka_bootstrap_servers"]
        assert settings.catalog_path == PACKAGE / "catalog.yaml"


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_each_cloud_run_function_reads_its_environment_and_finds_the_stacks_collections(
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
    environments = gcp_environments(build)
    for function in CELL_FUNCTIONS:
        # WHEN the function reads what the stack sets in its environment
        settings = gcp_functions.Settings.from_env(environments[function.job], PACKAGE)
        # THEN it opens the cell's database in the cell's project
        assert (settings.project, settings.database) == (config.project, database["inputs"]["name"])
        # AND the collections it would use are the ones the stack names in TTL fields, indexes, triggers
        collections = {collection_name(settings.collection_prefix, table.name) for table in CELL_TABLES}
        assert named_collections | triggered <= collections
        # AND it knows the broker exactly when it publishes or drains a topic
        drains = bool(environments[function.job].get("METERLINE_CONSUMER_GROUP"))
        assert bool(settings.kafka_bootstrap) == (bool(function.publishes) or drains)
    assert named_collections  # no Firestore-triggered job is left in a cell since rate moved home


@pytest.mark.parametrize("stack", STACKS)
def test_the_cells_exported_settings_are_what_its_functions_read(
    previews: dict[str, Any], stack: str
) -> None:
    # GIVEN the settings a stack exports for clients of the cell (meterline smoke)
    build = previews[stack]
    settings = build["outputs"]["cell_settings"]
    cloud = stack.split("-", 1)[0]
    environments = {
        "aws": lambda_environments,
        "gcp": gcp_environments,
        "azure": app_settings,
    }[cloud](build)
    # THEN each is set to the same value in every function that sets it, broker included where used
    for name, value in settings.items():
        if name in SET_BY_THE_PLATFORM.get(cloud, ()):
            continue
        setting_in = [env[name] for env in environments.values() if name in env]
        assert setting_in and set(setting_in) == {value}, name
    # AND the cloud's own settings reader takes them
    reader = {"aws": aws_lambda, "gcp": gcp_functions, "azure": azure_functions}[cloud]
    parsed = reader.Settings.from_env(settings, PACKAGE)
    assert parsed.kafka_bootstrap == build["outputs"]["kafka_bootstrap_servers"]


def app_settings(build: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        r["name"]: {s["name"]: s["value"] for s in r["inputs"]["siteConfig"]["appSettings"]}
        for r in of_type(build, "azure-native:web:WebApp")
    }
