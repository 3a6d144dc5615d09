"""The Azure cell follows the function app's code: the triggers `functions/function_app.py` registers,
read as the Functions host indexes them, are the consumer groups and receive rights the stacks create."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("azure.functions", reason="azure-functions (the azure extra) is not installed")

from infra.components.azure.cell import BUILD_DIR
from infra.components.azure.roles import EVENTHUB_RECEIVER
from infra.config import load_stack_config, read_stack_file
from meterline.adapters.azure_functions import DEFAULT_CONSUMER_GROUP, HUB_TRIGGERS, TIMER_SCHEDULES
from meterline.local.azure_app import EVENT_HUB_TRIGGER, TIMER_TRIGGER, IndexedFunction, load_function_app
from meterline.topology import CELL_FUNCTIONS
from tests.infra.builds import of_type
from tests.infra.test_stacks_azure import ASSIGNMENT, AZURE_STACKS


@pytest.fixture(scope="module")
def app() -> dict[str, IndexedFunction]:
    return load_function_app()


def group_of(trigger: Mapping[str, Any]) -> str:
    """A trigger without a consumer group reads in the hub's default one."""
    return str(trigger.get("consumerGroup") or DEFAULT_CONSUMER_GROUP)


def receivers(build: dict[str, Any], cell: str) -> dict[str, list[str]]:
    """Job → the hubs its identity may receive from."""
    found: dict[str, list[str]] = {}
    for assignment in of_type(build, ASSIGNMENT):
        inputs = assignment["inputs"]
        if inputs["roleDefinitionId"].endswith(EVENTHUB_RECEIVER):
            job = assignment["name"].removeprefix(f"{cell}-").split("-reads-")[0]
            found.setdefault(job, []).append(inputs["scope"].rsplit("/", 1)[-1])
    return found


def test_the_function_app_registers_one_function_per_job_with_the_triggers_the_cell_is_built_for(
    app: dict[str, IndexedFunction],
) -> None:
    # GIVEN the function app as the host indexes it
    # THEN it has every cell job, meter and aggregate on Event Hubs and publish on a timer, as declared,
    # and the single-cell pipeline's rate and close (the local runtime's) on timers
    assert set(app) == {function.job for function in CELL_FUNCTIONS} | {"rate", "close"}
    hubs = {name: f.trigger for name, f in app.items() if f.trigger_type == EVENT_HUB_TRIGGER}
    assert {name: (t["eventHubName"], group_of(t)) for name, t in hubs.items()} == {
        name: (trigger.hub, trigger.consumer_group) for name, trigger in HUB_TRIGGERS.items()
    }
    timers = {name: f.trigger["schedule"] for name, f in app.items() if f.trigger_type == TIMER_TRIGGER}
    assert timers == TIMER_SCHEDULES
    # AND the Event Hubs functions retry a failed batch without end (the checkpoint never skips one)
    assert all(app[name].retry is not None and app[name].retry.max_retries == -1 for name in hubs)  # type: ignore[union-attr]


@pytest.mark.parametrize("stack", AZURE_STACKS)
def test_each_stack_has_the_consumer_groups_and_receive_rights_of_the_functions_triggers(
    app: dict[str, IndexedFunction], previews: dict[str, Any], stack: str
) -> None:
    # GIVEN the stack built under mocks
    build = previews[stack]
    cell = load_stack_config(stack, read_stack_file(stack)).cell
    groups = {
        (g["inputs"]["eventHubName"], g["inputs"]["consumerGroupName"])
        for g in of_type(build, "azure-native:eventhub:ConsumerGroup")
    }
    # WHEN it is set beside the triggers the function app registers
    wanted = {
        (str(f.trigger["eventHubName"]), group_of(f.trigger))
        for f in app.values()
        if f.trigger_type == EVENT_HUB_TRIGGER
    }
    # THEN every consumer group a trigger reads in exists ($Default always does), and no other
    assert groups == {(hub, group) for hub, group in wanted if group != DEFAULT_CONSUMER_GROUP}
    # AND each Event Hubs function may receive from its hub only, and the timers from none
    assert receivers(build, cell) == {
        name: [str(f.trigger["eventHubName"])]
        for name, f in app.items()
        if f.trigger_type == EVENT_HUB_TRIGGER
    }


@pytest.mark.parametrize("job", [function.job for function in CELL_FUNCTIONS])
def test_each_apps_package_indexes_exactly_its_own_function(
    previews: dict[str, Any], job: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the package the eastus stack deploys for the job, unpacked as Flex unpacks it
    assert "azure-eastus" in previews  # the build wrote the packages
    with zipfile.ZipFile(BUILD_DIR / "azure-eastus" / f"{job}.zip") as package:
        package.extractall(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    # WHEN the host indexes its function_app.py
    app = load_function_app(tmp_path)
    # THEN it finds the job's function, and no other job's
    assert list(app) == [job]
