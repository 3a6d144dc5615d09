"""`meterline demo --cloud gcp` end to end: Tansu, Google's Firestore emulator and the real Cloud Run
function entrypoints (aggregate draining usage.events on its schedule), as a user runs it; and what
it says on a machine without the emulator.

As in test_demo.py, the run's own self-check is checked again from its files alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meterline.local.firestore_emulator import EmulatorUnavailableError, emulator_command
from tests.e2e.demo_checks import (
    DemoRun,
    assert_invoices_equal_rate_through_amendments,
    assert_ledgers_count_what_was_produced,
    run_demo,
)


def emulator_missing() -> str | None:
    try:
        emulator_command("127.0.0.1", 0)
    except EmulatorUnavailableError as error:
        return str(error)
    return None


@pytest.fixture(scope="module")
def gcp_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    if reason := emulator_missing():
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("demo-gcp")
    # late events at 5%: enough of them arrive after their month closed to make amendments
    return DemoRun.of(
        out, "--cloud", "gcp", "--tenants", "6", "--events", "400", "--seed", "7", "--late-rate", "0.05"
    )


def test_gcp_demo_invoices_equal_meterline_rate_through_amendments(gcp_run: DemoRun) -> None:
    # GIVEN a GCP demo run of 6 tenants and 400 events with every kind of fault
    # WHEN its invoices are compared with `meterline rate` on the events it produced
    # THEN there is no difference, both months were closed and the late usage came as amendments
    assert_invoices_equal_rate_through_amendments(gcp_run)


def test_gcp_demo_ledgers_reconcile_with_what_was_produced(gcp_run: DemoRun) -> None:
    # GIVEN the same run
    # WHEN the Firestore ledgers' counts are set beside the offline count of the same events
    # THEN every record produced is accounted for, reason by reason as rate says
    assert_ledgers_count_what_was_produced(gcp_run)
    # AND the run said so itself, through the Cloud Run entrypoints, with no traceback
    assert "Pub/Sub push → meter" in gcp_run.output
    assert "aggregated (scheduled Kafka drain)" in gcp_run.output
    assert "Traceback" not in gcp_run.output


def test_gcp_demo_without_java_says_the_emulator_is_missing(tmp_path: Path) -> None:
    # GIVEN a machine where neither java nor gcloud can be found
    env = {**os.environ, "PATH": str(tmp_path)}
    env.pop("CLOUDSDK_ROOT_DIR", None)
    # WHEN the GCP demo is asked for
    done = run_demo(tmp_path / "out", "--cloud", "gcp", env=env)
    # THEN it stops before starting anything, on one line, with status 2
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "meterline: error: the Firestore emulator is not available: java is not installed"
    ]
    assert not (tmp_path / "out").exists()
