"""`meterline demo --cloud azure` end to end: Tansu for Event Hubs' Kafka endpoint, Azurite's tables and
the real Azure function app, as a user runs it.

As in test_demo.py, the run's own self-check is checked again from its files alone.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

pytest.importorskip("azure.functions", reason="azure-functions (the azure extra) is not installed")

from meterline.adapters.azure_functions import hub_records
from meterline.local import azure_triggers
from meterline.local.azure_app import IndexedFunction, RetryPolicy
from meterline.local.azure_runtime import hub_batch
from meterline.local.azure_triggers import EventHubsTrigger
from meterline.local.esm import KafkaRecord
from meterline.topology import USAGE_EVENTS
from tests.e2e.demo_checks import (
    DemoRun,
    assert_invoices_equal_rate_through_amendments,
    assert_ledgers_count_what_was_produced,
    run_demo,
)


@pytest.fixture(scope="module")
def azure_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: it runs Azurite, the Azure Tables stand-in")
    out = tmp_path_factory.mktemp("demo-azure")
    # late events at 5%: enough of them arrive after their month closed to make amendments
    return DemoRun.of(
        out, "--cloud", "azure", "--tenants", "3", "--events", "300", "--seed", "7", "--late-rate", "0.05"
    )


def test_azure_demo_invoices_equal_meterline_rate_through_amendments(azure_run: DemoRun) -> None:
    # GIVEN an Azure demo run of 3 tenants and 300 events with every kind of fault
    # WHEN its invoices are compared with `meterline rate` on the events it produced
    # THEN there is no difference, both months were closed and the late usage came as amendments
    assert_invoices_equal_rate_through_amendments(azure_run)


def test_azure_demo_ledgers_reconcile_with_what_was_produced(azure_run: DemoRun) -> None:
    # GIVEN the same run
    # WHEN the Azure Tables ledgers' counts are set beside the offline count of the same events
    # THEN every record produced is accounted for, reason by reason as rate says
    assert_ledgers_count_what_was_produced(azure_run)
    # AND the run said so itself, through the Event Hubs triggers of the function app, with no traceback
    assert "Event Hubs → meter" in azure_run.output
    assert "Traceback" not in azure_run.output
    assert not (azure_run.out / "on-failure.ndjson").exists()


def test_azure_demo_without_node_says_azurite_needs_it(tmp_path: Path) -> None:
    # GIVEN a machine where node cannot be found
    env = {**os.environ, "PATH": str(tmp_path)}
    # WHEN the Azure demo is asked for
    done = run_demo(tmp_path / "out", "--cloud", "azure", env=env)
    # THEN it stops before starting anything, on one line, with status 2
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "meterline: error: Azurite (the Azure Tables stand-in) needs Node.js: node is not installed"
    ]
    assert not (tmp_path / "out").exists()


def test_without_the_azure_extra_the_demo_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a venv without the azure namespace package at all (make demo installs only aws, gcp, cli)
    from meterline.local import azure

    def no_azure(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {name.split('.')[0]!r}")

    monkeypatch.setattr(azure.importlib.util, "find_spec", no_azure)
    # WHEN the demo asks what the Azure cell lacks THEN it names the extra, not a traceback
    expected = "the Azure functions need azure-functions (pip install 'meterline[azure]')"
    assert azure.missing_for_azure() == expected


# --- the Event Hubs trigger: batches of one partition, retried, checkpointed after success ---------


class ScriptedRuntime:
    """Answers each invocation from a script, and keeps what each was given and the checkpoint then."""

    def __init__(self, trigger: Callable[[], EventHubsTrigger], *answers: Exception | None) -> None:
        self.trigger = trigger
        self.answers = list(answers)
        self.calls: list[tuple[list[int], dict[int, int]]] = []

    def call(self, name: str, events: list[Any]) -> None:
        self.calls.append(([event.sequence_number for event in events], dict(self.trigger().positions)))
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer


def records(partition: int, offsets: range) -> list[KafkaRecord]:
    return [
        KafkaRecord(
            USAGE_EVENTS.name, partition, offset, 1_700_000_000_000, b"org-1", f"v{offset}".encode(), ()
        )
        for offset in offsets
    ]


def hub_function(retry: RetryPolicy | None) -> IndexedFunction:
    trigger = {"type": "eventHubTrigger", "eventHubName": USAGE_EVENTS.name, "consumerGroup": "aggregate"}
    return IndexedFunction("aggregate", trigger, retry, lambda events: None)


def scripted(
    tmp_path: Path, retry: RetryPolicy | None, *answers: Exception | None
) -> tuple[EventHubsTrigger, ScriptedRuntime]:
    holder: list[EventHubsTrigger] = []
    runtime = ScriptedRuntime(lambda: holder[0], *answers)
    trigger = EventHubsTrigger(runtime, hub_function(retry), "b:9092", tmp_path / "on-failure", {})  # type: ignore[arg-type]
    holder.append(trigger)
    trigger.positions = {3: 10}
    return trigger, runtime


FOREVER = RetryPolicy(-1, timedelta(seconds=10))


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(azure_triggers, "RETRY_COMPRESSION", 10_000)


def test_a_batch_reaches_the_function_as_event_hub_events_of_one_partition() -> None:
    # GIVEN two records of partition 3, as the aggregate's trigger hands them over
    events = hub_batch(records(3, range(10, 12)), "aggregate")
    # WHEN the functions' decoder reads them
    decoded = hub_records(USAGE_EVENTS.name, events)
    # THEN each is delivered from partition 3 under its sequence number, with its key and body
    assert [str(record.delivery) for record in decoded] == ["usage.events|3|10", "usage.events|3|11"]
    assert [(record.key, record.value) for record in decoded] == [(b"org-1", b"v10"), (b"org-1", b"v11")]
    assert (
        events[0].metadata is not None
        and events[0].metadata["PartitionContext"]["ConsumerGroup"] == "aggregate"
    )


def test_a_failing_batch_is_retried_whole_and_checkpointed_only_after_it_succeeds(tmp_path: Path) -> None:
    # GIVEN a function that fails twice, as aggregate does while meter lags behind
    trigger, runtime = scripted(tmp_path, FOREVER, RuntimeError("not metered yet"), RuntimeError("again"))
    # WHEN a batch of partition 3 is delivered
    trigger.deliver(records(3, range(10, 13)), threading.Event())
    # THEN the same batch came three times, each before the checkpoint moved, and then it moved past it
    assert runtime.calls == [([10, 11, 12], {3: 10})] * 3
    assert trigger.positions == {3: 13}
    assert (trigger.retries, trigger.delivered, trigger.failed_batches) == (2, 3, 0)
    assert not (tmp_path / "on-failure").exists()


def test_a_batch_that_keeps_failing_stops_the_run_with_the_functions_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a function that always fails, and a run that gives a batch no time to recover
    monkeypatch.setattr(azure_triggers, "GIVE_UP_SECONDS", 0.0)
    trigger, _ = scripted(tmp_path, FOREVER, *[ValueError("cross-partition transaction")] * 100)
    # WHEN a batch is delivered THEN the run stops, naming the function, the partition and the error
    with pytest.raises(RuntimeError, match=r"^aggregate kept failing on usage.events partition 3 from 10"):
        trigger.deliver(records(3, range(10, 12)), threading.Event())
    # AND the checkpoint never moved past the batch
    assert trigger.positions == {3: 10}


def test_without_a_retry_policy_a_failed_batch_is_checkpointed_past_and_written_down(tmp_path: Path) -> None:
    # GIVEN a function without a retry policy that fails once
    trigger, runtime = scripted(tmp_path, None, RuntimeError("boom"))
    # WHEN a batch is delivered
    trigger.deliver(records(3, range(10, 12)), threading.Event())
    # THEN it was tried once, the checkpoint moved on (Azure's behaviour) and the batch is on file
    assert len(runtime.calls) == 1 and trigger.positions == {3: 12}
    [entry] = [orjson.loads(line) for line in (tmp_path / "on-failure").read_bytes().splitlines()]
    assert entry["sequenceNumbers"] == [10, 11] and entry["error"] == "RuntimeError: boom"
