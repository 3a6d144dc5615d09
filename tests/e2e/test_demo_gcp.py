"""`meterline demo --cloud gcp` end to end: Tansu, Google's Firestore emulator and the real Cloud Run
function entrypoints (aggregate draining usage.events on its schedule), as a user runs it; and what
it says on a machine without the emulator.

As in test_demo.py, the run's own self-check is checked again from its files alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from meterline.catalog import load_catalog
from meterline.local.firestore_emulator import EmulatorUnavailableError, emulator_command
from meterline.offline import rate_lines
from meterline.periods import Period
from meterline.reconcile import differences


def demo(out: Path, *arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "meterline.cli", "demo", "--out", str(out), *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)


def emulator_missing() -> str | None:
    try:
        emulator_command("127.0.0.1", 0)
    except EmulatorUnavailableError as error:
        return str(error)
    return None


@pytest.fixture(scope="module")
def gcp_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, str]]:
    if reason := emulator_missing():
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("demo-gcp")
    # late events at 5%: enough of them arrive after their month closed to make adjustment lines
    done = demo(
        out, "--cloud", "gcp", "--tenants", "6", "--events", "400", "--seed", "7", "--late-rate", "0.05"
    )
    yield done.returncode, out, done.stdout + done.stderr


def test_gcp_demo_invoices_equal_meterline_rate_through_adjustments(gcp_run: tuple[int, Path, str]) -> None:
    # GIVEN a GCP demo run of 6 tenants and 400 events with every kind of fault
    status, out, output = gcp_run
    # WHEN its invoices are compared with `meterline rate` on the events it produced
    documents: list[dict[str, Any]] = orjson.loads((out / "invoices.json").read_bytes())
    catalog = load_catalog(out / "catalog.yaml")
    events = (out / "events.ndjson").read_bytes().splitlines()
    by_period = {document["period"]: document["invoices"] for document in documents}
    found = []
    for period in by_period:
        expected = rate_lines(catalog, events, Period.parse(period)).to_json()
        found += differences(period, expected, by_period)
    # THEN there is no difference, both months were closed and the late usage came as adjustments
    assert status == 0, output
    assert found == []
    assert sorted(by_period) == ["2026-10", "2026-11"]
    lines = [line for invoice in by_period["2026-11"] for line in invoice["lines"]]
    assert {line["adjusts_period"] for line in lines if "adjusts_period" in line} == {"2026-10"}


def test_gcp_demo_ledgers_reconcile_with_what_was_produced(gcp_run: tuple[int, Path, str]) -> None:
    # GIVEN the same run
    status, out, output = gcp_run
    documents: list[dict[str, Any]] = orjson.loads((out / "invoices.json").read_bytes())
    catalog = load_catalog(out / "catalog.yaml")
    events = (out / "events.ndjson").read_bytes().splitlines()
    # WHEN the Firestore ledgers' counts are set beside the offline count of the same events
    for document in documents:
        expected = rate_lines(catalog, events, Period.parse(document["period"]))
        # THEN every record produced is accounted for, reason by reason as rate says
        assert document["summary"]["received"] == len(events)
        assert document["summary"] == expected.summary.to_json()
        assert document["unbilled_tenants"] == expected.unbilled_tenants
    # AND the run said so itself, through the Cloud Run entrypoints, with no traceback
    assert status == 0, output
    assert "✓ reconciled" in output
    assert "Pub/Sub push → meter" in output
    assert "aggregated (scheduled Kafka drain)" in output
    assert "Traceback" not in output


def test_gcp_demo_without_java_says_the_emulator_is_missing(tmp_path: Path) -> None:
    # GIVEN a machine where neither java nor gcloud can be found
    env = {**os.environ, "PATH": str(tmp_path)}
    env.pop("CLOUDSDK_ROOT_DIR", None)
    # WHEN the GCP demo is asked for
    done = demo(tmp_path / "out", "--cloud", "gcp", env=env)
    # THEN it stops before starting anything, on one line, with status 2
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "meterline: error: the Firestore emulator is not available: java is not installed"
    ]
    assert not (tmp_path / "out").exists()
