"""`meterline demo` stopped or killed mid-run, on each cloud: no server it started outlives it, none of
their ports stays open, and its --out says the run is incomplete rather than keeping an earlier
run's invoices and report beside the new events."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.demo_checks import demo_command

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc")

STARTUP_SECONDS = 180
GONE_SECONDS = 30


def state_of(pid: int) -> str | None:
    """The process's state letter (Z: a zombie, gone but for its exit status), None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None


def descendants_of(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    return state_of(pid) not in (None, "Z")


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Demo:
    """A demo run in the background, its output gathered as it comes."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err)):
            threading.Thread(target=self._gather, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _gather(stream: object, lines: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line.decode("utf-8", "replace"))

    def ports_once_started(self, cells: int = 1) -> set[int]:
        """The loopback ports the demo says its servers listen on, once they all started (each of
        its ``cells`` said where it logs)."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and self.process.poll() is None:
            said = "".join(self.out)
            if said.count(" · log ") >= cells:
                return {int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", said)}
            time.sleep(0.2)
        pytest.fail(f"the demo did not start its servers: {''.join(self.err)[-2000:]}")


def assert_gone_soon(started: set[int], ports: set[int]) -> None:
    """Within GONE_SECONDS none of the processes is alive and none of the ports listens."""
    deadline = time.monotonic() + GONE_SECONDS
    while time.monotonic() < deadline and (
        any(alive(pid) for pid in started) or any(listening(port) for port in ports)
    ):
        time.sleep(0.2)
    assert [pid for pid in started if alive(pid)] == []
    assert [port for port in ports if listening(port)] == []


def kill_what_is_left(demo: Demo, started: set[int]) -> None:
    """What the test started and the demo left behind: never beyond this test."""
    for pid in {demo.process.pid, *started, *descendants_of(demo.process.pid)}:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    demo.process.wait(timeout=30)


@pytest.fixture
def stale_out(tmp_path: Path) -> Path:
    """An --out where an earlier, finished run left its invoices and report."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("invoices.json", "report.html", "amendments.json"):
        (out / name).write_text("from an earlier run\n")
    return out


STOPS = [
    *((cloud, how) for cloud in ("aws", "gcp", "azure") for how in (signal.SIGTERM, signal.SIGKILL)),
    ("aws", signal.SIGHUP),  # a closed terminal: SIGTERM's path, once is enough
]


@pytest.mark.parametrize(("cloud", "how"), STOPS, ids=[f"{cloud}-{how.name}" for cloud, how in STOPS])
def test_no_server_of_the_demo_outlives_it_however_it_is_stopped(
    cloud: str, how: signal.Signals, stale_out: Path
) -> None:
    from meterline.local.demo import unavailable

    if reason := unavailable(cloud):
        pytest.skip(reason)

    # GIVEN a demo whose servers all started and whose events flow
    demo = Demo(demo_command(stale_out, "--cloud", cloud, "--tenants", "3", "--events", "20000"))
    started: set[int] = set()
    try:
        ports = demo.ports_once_started()
        started = descendants_of(demo.process.pid)
        time.sleep(1)
        assert ports and started and all(listening(port) for port in ports)

        # WHEN it is told to stop, or killed outright
        demo.process.send_signal(how)
        status = demo.process.wait(timeout=120)

        # THEN it says so (unless killed), and within seconds none of its processes or ports is left
        if how is signal.SIGKILL:
            assert status == -signal.SIGKILL
        else:
            assert status == 128 + how, "".join(demo.err)
            assert "".join(demo.err).splitlines()[-1] == f"meterline: stopped by {how.name}"
            assert "Traceback" not in "".join(demo.err)
        assert_gone_soon(started, ports)

        # AND --out holds the new run's events, marked incomplete, and no earlier run's results
        assert (stale_out / "INCOMPLETE").is_file()
        assert (stale_out / "events.ndjson").stat().st_size > 0
        assert not [
            name
            for name in ("invoices.json", "report.html", "amendments.json")
            if (stale_out / name).exists()
        ]
    finally:
        kill_what_is_left(demo, started)


def test_sigterm_while_the_cells_run_stops_every_server_of_every_cell_and_the_home(tmp_path: Path) -> None:
    from meterline.local.cells import DEFAULT_CELLS
    from meterline.local.demo import unavailable

    for cloud in ("gcp", "azure"):
        if reason := unavailable(cloud):
            pytest.skip(reason)

    # GIVEN the default deployment, small, its home's and every cell's servers started, usage flowing
    demo = Demo(demo_command(tmp_path, "--tenants", "3", "--events", "6000"))
    started: set[int] = set()
    try:
        ports = demo.ports_once_started(cells=len(DEFAULT_CELLS))
        time.sleep(2)
        started = descendants_of(demo.process.pid)
        assert demo.process.poll() is None, "the run ended before it could be stopped"
        assert ports and started and all(listening(port) for port in ports)

        # WHEN it is sent SIGTERM
        demo.process.send_signal(signal.SIGTERM)
        status = demo.process.wait(timeout=120)

        # THEN it exits 128 + 15, saying so, and within seconds none of its processes or ports is left
        assert status == 143, "".join(demo.err)
        assert "".join(demo.err).splitlines()[-1] == "meterline: stopped by SIGTERM"
        assert "Traceback" not in "".join(demo.err)
        assert_gone_soon(started, ports)
        assert (tmp_path / "INCOMPLETE").is_file()
    finally:
        kill_what_is_left(demo, started)
