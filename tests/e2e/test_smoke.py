"""`meterline smoke` against a cell on the local stand-ins (Tansu, moto, the Lambda handlers driven as
AWS drives them): every event it sends is metered and the tenant's running charges move."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meterline.cli import main
from meterline.local.cell import CellOptions, LocalCell
from meterline.local.runtime import CellSettings
from meterline.topology import USAGE_EVENTS

CATALOG = Path(__file__).resolve().parents[2] / "shared" / "meterline" / "samples" / "catalog.yaml"


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("smoke")
    options = CellOptions(catalog=CATALOG, log=folder / "cell.log", on_failure=folder / "failures")
    with LocalCell(options) as running:
        # the local Kafka trigger reads only where this run's own feed produced (StartingPosition
        # LATEST on a shared broker); this broker is the cell's own and fresh: read each partition whole
        running.feed.firsts.update(dict.fromkeys(range(USAGE_EVENTS.partitions), 0))
        # the stream triggers deliver what the streams hold instead of waiting out batching windows
        for mapping in (running.usage_stream, running.aggregates_stream):
            mapping.draining.set()
        yield running


def outputs_of(cell: Any, folder: Path) -> Path:
    """What `pulumi stack output --json` gives for a deployed AWS cell, for the local one."""
    settings = CellSettings(CATALOG, cell.prefix, cell.bootstrap, cell.endpoint, cell.options.region)
    path = folder / "outputs.json"
    path.write_text(json.dumps({"cost_inputs": {"cloud": "aws"}, "cell_settings": settings.environment()}))
    return path


def test_smoke_reports_every_event_metered_and_the_running_charges_moved(
    cell: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a running cell and its outputs
    outputs = outputs_of(cell, tmp_path)
    # WHEN a smoke run sends 150 events for a customer of the catalog
    argv = ["smoke", "--stack", "aws-local", "--tenant", "org-initech", "--outputs", str(outputs)]
    status = main([*argv, "--catalog", str(CATALOG), "--events", "150", "--timeout", "120"])
    # THEN all were metered, the tenant's running charges were rewritten, and it says so
    report = smoke_lines(capsys.readouterr().out)
    assert status == 0, report
    assert report[0] == "aws-local: 150 events sent to usage.events for org-initech (" + report[0][-8:]
    assert report[1].startswith("metered: 150 of 150 in ")
    assert report[2].startswith("running charges: ") and "(not updated)" not in report[2]
    assert report[-1] == "OK"


def smoke_lines(out: str) -> list[str]:
    """The report, without the handlers' metric lines (Powertools prints EMF to stdout)."""
    return [line for line in out.splitlines() if not line.startswith('{"_aws"')]


def test_a_second_run_is_new_usage_not_a_duplicate_of_the_first(
    cell: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = outputs_of(cell, tmp_path)
    argv = ["smoke", "--stack", "aws-local", "--tenant", "org-initech", "--outputs", str(outputs)]
    assert main([*argv, "--catalog", str(CATALOG), "--events", "40", "--timeout", "120"]) == 0
    assert "metered: 40 of 40" in smoke_lines(capsys.readouterr().out)[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tenant", "org-nobody"], "tenant 'org-nobody' is not a customer of the catalog"),
        (["--tenant", "org-initech", "--set", "oops"], "--set 'oops': expected NAME=VALUE"),
    ],
)
def test_a_smoke_run_that_cannot_start_says_why_on_one_line(
    cell: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
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
