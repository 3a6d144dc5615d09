"""Whatever the arguments and wherever the output goes, `meterline` ends in one line
``meterline...: error: ...`` and exit status 2 (1 when output cannot be written), never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import EVENTS, event
from tests.unit.test_cli_rate import assert_one_line_error
from tests.unit.test_cli_rate import run as exit_status

CATALOG = EVENTS / "catalog.yaml"
COMMAND = [sys.executable, "-m", "meterline.cli"]


@pytest.fixture
def usage(tmp_path: Path) -> Path:
    path = tmp_path / "usage.ndjson"
    path.write_text("\n".join(event(str(n), {}, type="api.call") for n in range(3)) + "\n", encoding="utf-8")
    return path


# --- output that cannot be written ------------------------------------------------------------------


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize(
    "arguments",
    [
        ["rate", "--catalog", str(CATALOG), "--usage", "{usage}", "--period", "2026-11"],
        ["generate", "--period", "2026-11", "--events", "5000"],
    ],
    ids=["rate", "generate"],
)
def test_output_to_a_full_disk_is_one_error_line_and_status_1(arguments: list[str], usage: Path) -> None:
    # GIVEN standard output on a device that is always full
    with Path("/dev/full").open("wb") as full:
        # WHEN the command writes its output there
        done = subprocess.run(
            [*COMMAND, *(argument.format(usage=usage) for argument in arguments)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=120,
        )

    # THEN it says so in one line and exits 1, with no traceback from the interpreter's last flush
    assert done.returncode == 1, done.stderr
    assert done.stderr == "meterline: error: cannot write to standard output (No space left on device)\n"


def test_a_reader_that_goes_away_ends_the_output_quietly() -> None:
    # GIVEN a month of events written to a pipe whose reader takes one line and leaves
    process = subprocess.Popen(
        [*COMMAND, "generate", "--period", "2026-11", "--events", "50000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()

    # WHEN the command finds the pipe closed / THEN it stops with status 1 and says nothing, as cat does
    assert process.wait(timeout=120) == 1
    assert process.stderr.read() == b""


# --- arguments out of all proportion ------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "mention"),
    [
        (["--events", "99999999999999999999"], "--events must be at most 100,000,000"),
        (["--events", "-1"], "--events must be at least 1"),
        (["--tenants", "99999999999999999999"], "--tenants must be at most 100,000"),
        (["--tenants", "-3"], "--tenants must be at least 1"),
        (["--seed", "one"], "--seed"),
        (["--period", "0001-01"], "--period 0001-01: late events fall in the month before"),
        (["--duplicate-rate", "1e999999999"], "--duplicate-rate"),
        (["--out", "/dev/null/usage.ndjson"], "/dev/null/usage.ndjson: cannot write events"),
    ],
)
def test_generate_refuses_arguments_out_of_all_proportion_in_one_line(
    arguments: list[str], mention: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = exit_status(["generate", "--period", "2026-11", "--events", "5000", *arguments])
    assert status == 2
    assert_one_line_error(capsys.readouterr().err, mention)


@pytest.mark.parametrize(
    ("arguments", "mention"),
    [
        (["--events", "99999999999999999999"], "the demo runs at most 1,000,000"),
        (["--tenants", "99999999999999999999"], "--tenants must be at most 100,000"),
        (["--tenants", "0"], "--tenants must be at least 1"),
        (["--period", "0001-01"], "late events fall in the month before"),
        (["--out", "/dev/null"], "--out /dev/null: is not a directory"),
        (["--out", "/dev/null/out"], "--out /dev/null/out: cannot make the directory"),
        (["--kafka", "nonsense"], "'nonsense' is not HOST:PORT"),
        (["--kafka", "127.0.0.1:99999"], "is not HOST:PORT"),
        (["--aws-endpoint", "nonsense"], "'nonsense' is not an http:// or https:// URL"),
        (["--aws-endpoint", "http://[::1"], "is not an http:// or https:// URL"),
        (["--catalog", "/dev/zero"], "/dev/zero: the catalog is larger than 1,048,576 bytes"),
        (["--catalog", "{latin1}"], "the catalog is not UTF-8 text"),
        (["--cells", "aws"], "cell 'aws': name it <cloud>-<region>"),
        (
            ["--cells", "ibm-dallas"],
            "cell 'ibm-dallas': name it <cloud>-<region>, the cloud one of aws, gcp, azure",
        ),
        (["--cells", "aws-us-east-1,aws-us-east-1"], "each cell once"),
        (["--cells", "aws-us-east-1", "--cloud", "aws"], "--cloud runs one cell, --cells several"),
        (["--kafka", "127.0.0.1:9092"], "--kafka and --aws-endpoint serve one cell: give --cloud too"),
    ],
)
def test_demo_refuses_bad_arguments_in_one_line_before_starting_anything(
    arguments: list[str], mention: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("meters: []  # café\n".encode("latin-1"))
    arguments = [argument.format(latin1=latin1) for argument in arguments]
    out = ["--out", str(tmp_path / "out")] if "--out" not in arguments else []

    status = exit_status(["demo", "--tenants", "2", "--events", "1000", *out, *arguments])

    assert status == 2
    assert_one_line_error(capsys.readouterr().err, mention)
    assert not (tmp_path / "out" / "events.ndjson").exists()


def test_demo_with_a_broker_address_where_none_answers_stops_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--cloud", "aws", "--kafka", "127.0.0.1:1", "--tenants", "2", "--events", "1000"]
    status = exit_status(["demo", *arguments, "--out", str(tmp_path)])
    assert status == 1
    assert_one_line_error(capsys.readouterr().err, "--kafka 127.0.0.1:1: no broker answers there")


@pytest.mark.parametrize(
    ("arguments", "mention"),
    [
        (["--events", "99999999999999999999"], "more than the 10,000,000 a bench holds in memory"),
        (["--pipeline", "--tenants", "9999999", "--events", "10"], "--tenants must be at most 100,000"),
        (["--batch", "0"], "--batch"),
    ],
)
def test_bench_refuses_counts_out_of_all_proportion_in_one_line(
    arguments: list[str], mention: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = exit_status(["bench", *arguments])
    assert status == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert mention in err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "volume", ["1e999999999", "99999999999999999999999999999999999", "1e-30", "-1", "NaN"]
)
def test_cost_refuses_a_what_if_volume_out_of_all_proportion(
    volume: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = exit_status(["cost", "--offline", "--events-per-second", volume])
    assert status == 2
    assert_one_line_error(capsys.readouterr().err, "--events-per-second")


@pytest.mark.parametrize("value", ["1e999999999", "99999999999999999999999999999999999"])
def test_cost_refuses_a_measured_figure_out_of_all_proportion_in_one_line(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.infra.cost_fixtures import AWS_STACK, write_stack_output

    # GIVEN a stack's outputs, and measured figures with one absurd figure laid over the real ones
    outputs = write_stack_output(tmp_path, AWS_STACK)
    measured = tmp_path / "measured.json"
    absurd = {"value": value, "per": "constant", "unit": "bytes per record", "source": "a test"}
    measured.write_text(json.dumps({"figures": {"msk.record_overhead_bytes": absurd}}), encoding="utf-8")

    # WHEN the stack is priced with them / THEN one line says the figure is out of scale
    status = exit_status(["cost", str(outputs), "--measured", str(measured)])
    assert status == 2
    assert_one_line_error(capsys.readouterr().err, "too large or too small to price exactly")


def test_a_line_longer_than_a_kafka_message_is_one_malformed_event_read_in_bounded_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a usage file with a 5 MiB line of digits between two events
    usage = tmp_path / "usage.ndjson"
    with usage.open("wb") as out:
        out.write(event("1", {}, type="api.call").encode() + b"\n")
        out.write(b"[" + b"1," * (5 * 2**19) + b"1]\n")
        out.write(event("2", {}, type="api.call").encode() + b"\n")

    # WHEN it is rated
    status = exit_status(["rate", "--catalog", str(CATALOG), "--usage", str(usage), "--period", "2026-11"])

    # THEN the long line is one record, rejected as malformed, and the events around it count
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert status == 0
    assert (summary["received"], summary["accepted"], summary["rejected"]) == (3, 2, 1)
    assert summary["rejected_by_reason"]["malformed"] == 1


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux", reason="limits memory with setrlimit")
def test_one_endless_line_is_rated_within_bounded_memory(tmp_path: Path) -> None:
    # GIVEN a usage file that is one line of 2 GiB (sparse: zeros that take no disk)
    usage = tmp_path / "usage.ndjson"
    with usage.open("wb") as file:
        file.truncate(2 * 2**30)

    # WHEN it is rated by a process allowed 1 GiB of address space (set by the child itself: a
    # preexec_fn forks this process, whose gRPC threads' fork handlers can abort under the limit)
    limited = (
        "import resource, runpy; resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30));"
        " runpy.run_module('meterline.cli', run_name='__main__')"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            limited,
            "rate",
            "--catalog",
            str(CATALOG),
            "--usage",
            str(usage),
            "--period",
            "2026-11",
        ],
        capture_output=True,
        check=False,
        timeout=300,
    )

    # THEN it reads the line a mebibyte at a time: one malformed record, no MemoryError
    assert done.returncode == 0, done.stderr.decode()[-500:]
    assert json.loads(done.stdout)["summary"]["rejected_by_reason"]["malformed"] == 1
