"""`meterline rate` as a user runs it: JSON on stdout, or a one-line error and exit status 2."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from meterline.cli import main
from tests.helpers import EVENTS, event

CATALOG = EVENTS / "catalog.yaml"
USAGE = "\n".join(
    [
        event("1", {}, type="api.call"),
        event("2", {}, type="api.call"),
        event("2", {}, type="api.call"),
        "",
        "not json",
    ]
)


def run(argv: list[str]) -> int:
    """main() as the console script runs it: argparse's own errors leave by SystemExit."""
    try:
        return main(argv)
    except SystemExit as leaving:
        return int(leaving.code or 0)


def assert_one_line_error(stderr: str, *mentions: str) -> None:
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    assert errors[0].startswith("meterline")
    assert stderr.rstrip("\n").splitlines()[-1] == errors[0]  # the error is the last thing said
    assert "Traceback" not in stderr
    for mention in mentions:
        assert mention in errors[0]


@pytest.fixture
def usage_file(tmp_path: Path) -> Path:
    path = tmp_path / "usage.ndjson"
    path.write_text(USAGE + "\n", encoding="utf-8")
    return path


def test_rate_prints_the_invoices_and_summary_as_json(
    usage_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(["rate", "--catalog", str(CATALOG), "--usage", str(usage_file), "--period", "2026-11"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    assert out["period"] == "2026-11"
    # 2 calls × 0.001 = 0.002 → 0.00
    assert out["invoices"][0]["lines"] == [
        {"meter": "api_calls", "group": {}, "quantity": "2", "amount": "0.00"}
    ]
    assert (out["summary"]["received"], out["summary"]["duplicates"], out["summary"]["rejected"]) == (4, 1, 1)


def test_rate_reads_usage_from_standard_input(
    usage_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the usage file's bytes on standard input
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(usage_file.read_bytes())))
    status = run(["rate", "--catalog", str(CATALOG), "--usage", "-", "--period", "2026-11"])
    from_stdin = capsys.readouterr().out

    # THEN it prints what the file gives
    run(["rate", "--catalog", str(CATALOG), "--usage", str(usage_file), "--period", "2026-11"])
    assert status == 0
    assert from_stdin == capsys.readouterr().out


@pytest.mark.parametrize(
    "period", ["2026-13", "2026-1", "26-11", "2026-11\n", "0000-01", "9999-12", "November"]
)
def test_a_bad_period_is_a_one_line_error(
    usage_file: Path, period: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(["rate", "--catalog", str(CATALOG), "--usage", str(usage_file), "--period", period])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert_one_line_error(captured.err, "period")


def test_a_missing_catalog_is_a_one_line_error_naming_it(
    usage_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.yaml"
    status = run(["rate", "--catalog", str(missing), "--usage", str(usage_file), "--period", "2026-11"])
    captured = capsys.readouterr()
    assert status == 2
    assert_one_line_error(captured.err, str(missing))


def test_a_directory_as_usage_is_a_one_line_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(["rate", "--catalog", str(CATALOG), "--usage", str(tmp_path), "--period", "2026-11"])
    captured = capsys.readouterr()
    assert status == 2
    assert_one_line_error(captured.err, str(tmp_path), "directory")


def test_a_missing_usage_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.ndjson"
    status = run(["rate", "--catalog", str(CATALOG), "--usage", str(missing), "--period", "2026-11"])
    assert status == 2
    assert_one_line_error(capsys.readouterr().err, str(missing))


def test_an_unknown_flag_is_a_one_line_error(usage_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = run(
        ["rate", "--catalog", str(CATALOG), "--usage", str(usage_file), "--period", "2026-11", "--fast"]
    )
    assert status == 2
    assert_one_line_error(capsys.readouterr().err, "--fast")


def test_a_missing_required_flag_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["rate", "--catalog", str(CATALOG)]) == 2
    assert_one_line_error(capsys.readouterr().err, "--usage")


def test_the_installed_command_is_byte_identical_run_twice_and_fails_cleanly(usage_file: Path) -> None:
    # GIVEN the command run as a separate process, twice on the same input, then with a bad period
    command = [sys.executable, "-m", "meterline.cli", "rate", "--catalog", str(CATALOG), "--usage"]
    first, second, bad = (
        subprocess.run([*command, str(usage_file), "--period", period], capture_output=True, check=False)
        for period in ("2026-11", "2026-11", "2026-00")
    )

    # THEN both runs succeed with the same bytes; the bad one says one line and exits 2
    assert (first.returncode, second.returncode) == (0, 0)
    assert first.stdout == second.stdout
    assert json.loads(first.stdout)["summary"]["accepted"] == 2
    assert bad.returncode == 2
    assert bad.stdout == b""
    assert_one_line_error(bad.stderr.decode(), "2026-00")
