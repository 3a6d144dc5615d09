"""`meterline smoke` against a cell on the local stand-ins (Tansu, moto, the Lambda handlers driven as
AWS drives them): every event it sends is metered and the tenant's running charges move."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from meterline.cli import main

CATALOG = Path(__file__).resolve().parents[2] / "shared" / "meterline" / "samples" / "catalog.yaml"
CELL = """
import json, sys
from pathlib import Path
from meterline.local.cell import CellOptions, LocalCell
from meterline.topology import USAGE_EVENTS

catalog, folder = Path(sys.argv[1]), Path(sys.argv[2])
options = CellOptions(catalog=catalog, log=folder / "cell.log", on_failure=folder / "failures")
with LocalCell(options) as cell:
    # the local Kafka trigger reads only where this run's own feed produced (StartingPosition LATEST
    # on a shared broker); this broker is the cell's own and fresh: it reads each partition whole
    cell.feed.firsts.update(dict.fromkeys(range(USAGE_EVENTS.partitions), 0))
    # the stream triggers deliver what the streams hold instead of waiting out batching windows
    for mapping in (cell.usage_stream, cell.aggregates_stream):
        mapping.draining.set()
    # what a deployed cell exports as its cell_settings: the functions' settings, region included
    sys.__stdout__.write(json.dumps(cell.settings.to_env(platform=True)) + "\\n")
    sys.__stdout__.flush()
    sys.stdin.read()  # runs until the test closes its input
"""
"""A cell on the local stand-ins, in a process of its own as a deployed cell would be (its handlers'
loggers and environment stay out of the tests' process)."""


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    folder = tmp_path_factory.mktemp("smoke")
    process = subprocess.Popen(
        [sys.executable, "-c", CELL, str(CATALOG), str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        settings = json.loads(process.stdout.readline() or "null")
        assert settings, f"the local cell did not start: see {folder / 'cell.log'}"
        yield settings
    finally:
        process.stdin.close()
        process.wait(timeout=120)


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """What an operator's shell has: credentials (moto takes any)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")


def outputs_of(settings: dict[str, str], folder: Path) -> Path:
    """What `pulumi stack output --json` gives for a deployed AWS cell, for the local one."""
    path = folder / "outputs.json"
    path.write_text(json.dumps({"cost_inputs": {"cloud": "aws"}, "cell_settings": settings}))
    return path


def test_smoke_reports_every_event_metered_and_the_running_charges_moved(
    cell: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a running cell and its outputs
    outputs = outputs_of(cell, tmp_path)
    # WHEN a smoke run sends 150 events for a customer of the catalog
    argv = ["smoke", "--stack", "aws-local", "--tenant", "org-initech", "--outputs", str(outputs)]
    status = main([*argv, "--catalog", str(CATALOG), "--events", "150", "--timeout", "120"])
    # THEN all were metered, the tenant's running charges were rewritten, and it says so
    report = capsys.readouterr().out.splitlines()
    assert status == 0, report
    assert report[0] == "aws-local: 150 events sent to usage.events for org-initech (" + report[0][-8:]
    assert report[1].startswith("metered: 150 of 150 in ")
    assert report[2].startswith("running charges: ") and "(not updated)" not in report[2]
    assert report[-1] == "OK"


def test_a_second_run_is_new_usage_not_a_duplicate_of_the_first(
    cell: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = outputs_of(cell, tmp_path)
    argv = ["smoke", "--stack", "aws-local", "--tenant", "org-initech", "--outputs", str(outputs)]
    assert main([*argv, "--catalog", str(CATALOG), "--events", "40", "--timeout", "120"]) == 0
    assert "metered: 40 of 40" in capsys.readouterr().out.splitlines()[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tenant", "org-nobody"], "tenant 'org-nobody' is not a customer of the catalog"),
        (["--tenant", "org-initech", "--set", "oops"], "--set 'oops': expected NAME=VALUE"),
    ],
)
def test_a_smoke_run_that_cannot_start_says_why_on_one_line(
    cell: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    outputs = outputs_of(cell, tmp_path)
    status = main(
        ["smoke", "--stack", "aws-local", "--outputs", str(outputs), "--catalog", str(CATALOG), *argv]
    )
    error = capsys.readouterr().err
    assert status == 2 and error.count("\n") == 1 and message in error


def test_outputs_without_the_cells_settings_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = tmp_path / "old.json"
    outputs.write_text(json.dumps({"cost_inputs": {"cloud": "aws"}}))
    argv = ["smoke", "--stack", "aws-old", "--tenant", "org-initech", "--outputs", str(outputs)]
    assert main([*argv, "--catalog", str(CATALOG)]) == 2
    assert "exports no 'cell_settings' object" in capsys.readouterr().err
