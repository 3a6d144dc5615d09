"""`meterline bench --cold-import`: how long each AWS handler takes to import in a fresh
interpreter, against a bare ``import boto3`` measured in the same run.

Each handler is laid out as its Lambda archive lays it out (``aws.py`` at the root, the core's
sources beside it as ``meterline/``, no byte code), so every run compiles the core as a cold
Lambda does; the third-party packages come from this interpreter's environment, compiled, as the
layer and the runtime's boto3 are. Every figure is the median of several runs, each in its own
interpreter, taken in turns so a slow moment of a shared machine falls on every figure alike.
Only the import is timed (not the interpreter's start).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CORE_DIR = Path(__file__).resolve().parent
FUNCTIONS_DIR = CORE_DIR.parents[1] / "functions"
RUNS = 5
TARGET_RATIO = 1.4
"""Issue 13's target: each handler's cold import at most 1.4 times a bare ``import boto3``."""
BASELINE = "boto3"
_TIMED = "import time; started = time.perf_counter(); import {module}; print(time.perf_counter() - started)"


class ColdImportError(Exception):
    """A handler that does not import, or no handlers to time."""


def aws_jobs() -> list[str]:
    return sorted(path.parent.name for path in FUNCTIONS_DIR.glob("*/aws.py"))


def cold_imports(runs: int = RUNS) -> dict[str, Any]:
    jobs = aws_jobs()
    if not jobs:
        raise ColdImportError(f"no AWS handlers under {FUNCTIONS_DIR}: run from a meterline clone")
    with tempfile.TemporaryDirectory(prefix="meterline-cold-") as folder:
        root = Path(folder)
        compiled = shutil.ignore_patterns("__pycache__", "*.py[co]")
        shutil.copytree(CORE_DIR, root / "meterline", ignore=compiled)
        for job in jobs:
            (root / job).mkdir()
            shutil.copyfile(FUNCTIONS_DIR / job / "aws.py", root / job / "aws.py")
        seconds: dict[str, list[float]] = {BASELINE: [], **{job: [] for job in jobs}}
        for _ in range(runs):
            seconds[BASELINE].append(_import_seconds(BASELINE, root, root))
            for job in jobs:
                seconds[job].append(_import_seconds("aws", root / job, root))
    baseline = statistics.median(seconds[BASELINE])
    return {
        "runs": runs,
        "boto3_seconds": round(baseline, 3),
        "target_ratio": TARGET_RATIO,
        "handlers": {
            job: {
                "seconds": round(statistics.median(seconds[job]), 3),
                "ratio": round(statistics.median(seconds[job]) / baseline, 2),
            }
            for job in jobs
        },
        "python": sys.version.split()[0],
    }


def _import_seconds(module: str, handler_dir: Path, core_parent: Path) -> float:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("PYTHON")}
    environment |= {
        "PYTHONPATH": os.pathsep.join([str(handler_dir), str(core_parent)]),
        "PYTHONDONTWRITEBYTECODE": "1",  # every run compiles the core, as a cold Lambda does
        "AWS_DEFAULT_REGION": environment.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    result = subprocess.run(
        [sys.executable, "-c", _TIMED.format(module=module)],
        cwd=handler_dir,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ColdImportError(f"{handler_dir.name}: `import {module}` failed: {last}")
    return float(result.stdout.strip().splitlines()[-1])


def format_cold_imports(report: dict[str, Any]) -> str:
    lines = [
        f"Cold import of each AWS handler, median of {report['runs']} fresh interpreters, against a bare"
        f" `import boto3` ({report['boto3_seconds']:.3f} s) in the same run;"
        f" target <= {report['target_ratio']}x:",
    ]
    for job, figure in report["handlers"].items():
        verdict = "ok" if figure["ratio"] <= report["target_ratio"] else "OVER TARGET"
        lines.append(f"  {job:<10} {figure['seconds']:>7.3f} s  {figure['ratio']:>5.2f}x boto3  {verdict}")
    return "\n".join(lines)
