"""`meterline demo` end to end: Tansu, a moto server and the real Lambda handlers, as a user runs it.

The demo checks itself; these tests check it again from its files alone, so a demo that skipped
or botched its own check still fails here.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.demo_checks import (
    DemoRun,
    assert_invoices_equal_rate_through_amendments,
    assert_ledgers_count_what_was_produced,
    demo_command,
)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    out = tmp_path_factory.mktemp("demo")
    return DemoRun.of(out, "--tenants", "3", "--events", "1500", "--seed", "7", timeout=240)


def test_demo_invoices_equal_meterline_rate_through_amendments(small_run: DemoRun) -> None:
    # GIVEN a demo run of 3 tenants and 1,500 events with every kind of fault
    # WHEN its invoices are compared with `meterline rate` on the events it produced
    # THEN there is no difference, both months were closed and the late usage came as amendments
    assert_invoices_equal_rate_through_amendments(small_run)


def test_demo_ledgers_reconcile_with_what_was_produced(small_run: DemoRun) -> None:
    # GIVEN the same run
    # WHEN the ledgers' counts are set beside the offline count of the same events
    # THEN every record produced is accounted for, reason by reason as rate says
    assert_ledgers_count_what_was_produced(small_run)
    # AND received = accepted + duplicates + rejected + out of period, in every month
    for summary in (document["summary"] for document in small_run.documents):
        assert summary["received"] == (
            summary["accepted"] + summary["duplicates"] + summary["rejected"] + summary["out_of_period"]
        )
    assert (small_run.out / "report.html").read_text().count("<svg") >= 2


def test_a_finished_run_takes_its_incomplete_marker_away(small_run: DemoRun) -> None:
    # GIVEN the same run, finished / THEN its --out holds its results and no INCOMPLETE marker
    assert (small_run.out / "invoices.json").is_file()
    assert not (small_run.out / "INCOMPLETE").exists()


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
    command = demo_command(tmp_path, "--tenants", "3", "--events", "20000")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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
