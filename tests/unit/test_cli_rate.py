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


# --- SPEC §9: several cells, a range of periods -----------------------------------------------------


def calls(path: Path, *ids_and_times: tuple[str, str]) -> Path:
    path.write_text("".join(event(i, {}, type="api.call", time=t) + "\n" for i, t in ids_and_times))
    return path


def test_a_range_prints_one_document_per_period_as_a_json_array(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN calls in October and November
    usage = calls(tmp_path / "u.ndjson", ("1", "2026-10-05T00:00:00Z"), ("2", "2026-11-05T00:00:00Z"))

    # WHEN September to November is rated
    status = run(
        ["rate", "--catalog", str(CATALOG), "--usage", str(usage), "--from", "2026-09", "--to", "2026-11"]
    )

    # THEN three documents, each period's call on its own invoice, each counting the others out of period
    documents = json.loads(capsys.readouterr().out)
    assert status == 0
    assert [document["period"] for document in documents] == ["2026-09", "2026-10", "2026-11"]
    quantities = [[line["quantity"] for line in d["invoices"][0]["lines"]] for d in documents]
    assert quantities == [[], ["1"], ["1"]]
    assert [(d["summary"]["accepted"], d["summary"]["out_of_period"]) for d in documents] == [
        (0, 2),
        (1, 1),
        (1, 1),
    ]


def test_each_cell_deduplicates_its_own_file_and_the_summary_counts_them_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the same event in two cells' files (a producer publishes to one cell: two events), and
    # one file that repeats its event (a duplicate)
    november = "2026-11-05T00:00:00Z"
    east = calls(tmp_path / "east.ndjson", ("1", november), ("1", november))
    west = calls(tmp_path / "west.ndjson", ("1", november))
    local = calls(tmp_path / "local.ndjson", ("2", november))

    # WHEN rated together, two files named by cell and one bare (the cell "local")
    argv = ["rate", "--catalog", str(CATALOG), "--period", "2026-11"]
    status = run([*argv, "--usage", f"aws-us-east-1={east}", f"aws-us-west-2={west}", str(local)])

    # THEN 4 received, 1 duplicate (within east), 3 calls billed
    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert (document["summary"]["received"], document["summary"]["duplicates"]) == (4, 1)
    assert document["invoices"][0]["lines"][0]["quantity"] == "3"


@pytest.mark.parametrize(
    ("arguments", "mentions"),
    [
        (["--period", "2026-11", "--from", "2026-10", "--to", "2026-11"], ["--period", "--from"]),
        (["--from", "2026-10"], ["--from", "--to"]),
        (["--to", "2026-10"], ["--from", "--to"]),
        (["--from", "2026-12", "--to", "2026-11"], ["--from 2026-12 is after --to 2026-11"]),
        ([], ["--period"]),
        (["--from", "2026-13", "--to", "2026-11"], ["2026-13"]),
    ],
)
def test_bad_periods_are_one_line_errors(
    usage_file: Path, arguments: list[str], mentions: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(["rate", "--catalog", str(CATALOG), "--usage", str(usage_file), *arguments])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert_one_line_error(captured.err, *mentions)


@pytest.mark.parametrize(
    ("usages", "mentions"),
    [
        (["east={f}", "east={f}"], ["cell 'east' is given twice"]),
        (["{f}", "{f}"], ["cell 'local' is given twice"]),
        (["-", "other=-"], ["standard input"]),
    ],
)
def test_a_cell_given_twice_is_a_one_line_error(
    usage_file: Path, usages: list[str], mentions: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["rate", "--catalog", str(CATALOG), "--period", "2026-11", "--usage"]
    status = run([*argv, *(usage.format(f=usage_file) for usage in usages)])
    captured = capsys.readouterr()
    assert status == 2
    assert_one_line_error(captured.err, *mentions)


def test_a_missing_file_of_one_cell_is_a_one_line_error_naming_it(
    usage_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "west.ndjson"
    argv = ["rate", "--catalog", str(CATALOG), "--period", "2026-11", "--usage"]
    status = run([*argv, f"east={usage_file}", f"west={missing}"])
    assert status == 2
    assert_one_line_error(capsys.readouterr().err, str(missing))
