"""`meterline demo` end to end: Tansu, a moto server and the real Lambda handlers, as a user runs it.

The demo checks itself; these tests check it again from its files alone, so a demo that skipped
or botched its own check still fails here.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from meterline.catalog import load_catalog
from meterline.offline import rate_lines
from meterline.periods import Period
from meterline.reconcile import differences


def demo(out: Path, *arguments: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "meterline.cli", "demo", "--out", str(out), *arguments]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, str]]:
    out = tmp_path_factory.mktemp("demo")
    process = demo(out, "--tenants", "3", "--events", "1500", "--seed", "7")
    stdout, stderr = process.communicate(timeout=240)
    yield process.returncode, out, stdout.decode() + stderr.decode()


def test_demo_invoices_equal_meterline_rate_through_adjustments(small_run: tuple[int, Path, str]) -> None:
    # GIVEN a demo run of 3 tenants and 1,500 events with every kind of fault
    status, out, output = small_run
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
    adjustments = [line for line in lines if "adjusts_period" in line]
    assert adjustments and {line["adjusts_period"] for line in adjustments} == {"2026-10"}


def test_demo_ledgers_reconcile_with_what_was_produced(small_run: tuple[int, Path, str]) -> None:
    # GIVEN the same run
    status, out, output = small_run
    documents: list[dict[str, Any]] = orjson.loads((out / "invoices.json").read_bytes())
    catalog = load_catalog(out / "catalog.yaml")
    events = (out / "events.ndjson").read_bytes().splitlines()
    # WHEN the ledgers' counts are set beside the offline count of the same events
    for document in documents:
        summary = document["summary"]
        expected = rate_lines(catalog, events, Period.parse(document["period"])).summary.to_json()
        # THEN received = accepted + duplicates + rejected + out of period, reason by reason as rate says
        assert summary["received"] == len(events)
        assert summary["received"] == (
            summary["accepted"] + summary["duplicates"] + summary["rejected"] + summary["out_of_period"]
        )
        assert summary == expected
        assert (
            document["unbilled_tenants"]
            == rate_lines(catalog, events, Period.parse(document["period"])).unbilled_tenants
        )
    assert status == 0, output
    assert "✓ reconciled" in output
    assert (out / "report.html").read_text().count("<svg") >= 2


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads child processes from /proc")
def test_ctrl_c_stops_every_process_the_demo_started(tmp_path: Path) -> None:
    # GIVEN a demo that has started its broker and moto server
    process = demo(tmp_path, "--tenants", "3", "--events", "20000")
    started: set[int] = set()
    deadline = time.monotonic() + 60
    while len(started) < 2 and time.monotonic() < deadline and process.poll() is None:
        started = children_of(process.pid)
        time.sleep(0.1)
    assert len(started) >= 2
    time.sleep(2)
    # WHEN it is interrupted
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    # THEN it says so, and none of its servers outlives it
    assert process.returncode == 130, stderr.decode()
    assert b"Traceback" not in stderr
    assert [pid for pid in started if Path(f"/proc/{pid}").exists()] == []
