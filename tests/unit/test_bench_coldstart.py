"""`meterline bench --cold-import`: every AWS handler is imported cold, next to a bare boto3 import.

No timing is asserted: only that each handler imports from its Lambda layout and that the ratios
are those of the figures printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterline.bench_coldstart import aws_jobs, cold_imports, format_cold_imports
from meterline.cli import main
from meterline.topology import FUNCTIONS


def test_each_aws_handler_is_timed_against_boto3_in_one_run() -> None:
    # WHEN the cold imports are measured, once each
    report = cold_imports(runs=1)

    # THEN every AWS handler has a figure, and its ratio is its seconds over boto3's
    # (every job of the topology has an AWS handler: a cell's and the billing home's)
    assert list(report["handlers"]) == aws_jobs() == sorted({function.job for function in FUNCTIONS})
    assert aws_jobs() == ["aggregate", "close", "ingest", "meter", "publish", "rate"]
    assert report["boto3_seconds"] > 0
    for figure in report["handlers"].values():
        assert figure["seconds"] > 0
        assert figure["ratio"] == pytest.approx(figure["seconds"] / report["boto3_seconds"], abs=0.02)
    # AND the text names each handler with its ratio and the target
    text = format_cold_imports(report)
    for job, figure in report["handlers"].items():
        assert f"{job:<10} {figure['seconds']:>7.3f} s  {figure['ratio']:>5.2f}x boto3" in text
    assert "target <= 1.4x" in text


def test_a_handler_that_does_not_import_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a handler whose import fails
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "aws.py").write_text("import no_such_module_anywhere\n")
    monkeypatch.setattr("meterline.bench_coldstart.FUNCTIONS_DIR", tmp_path)

    # WHEN the section runs THEN it exits 2 naming the handler and the error, without a traceback
    assert main(["bench", "--cold-import", "--json"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("meterline bench: error: broken: `import aws` failed: ModuleNotFoundError")
