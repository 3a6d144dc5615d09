"""Each function's archive holds its handler, the core and the catalog, and nothing heavy."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from infra.packaging import CATALOG_NAME, build_function_archive, function_source, present_jobs
from meterline.topology import CELL_FUNCTIONS

CATALOG = Path(__file__).resolve().parents[2] / "shared" / "meterline" / "samples" / "catalog.yaml"
HEAVY = (
    "boto3/",
    "botocore/",
    "pulumi",
    "tests/",
    "test_",
    "__pycache__",
    ".pyc",
    "meterline/cli.py",
    "_cli.py",
    "meterline/local/",
)


@pytest.mark.parametrize("job", [function.job for function in CELL_FUNCTIONS] + ["topics"])
def test_archive_holds_the_handler_the_core_and_the_catalog_and_nothing_heavy(
    job: str, tmp_path: Path
) -> None:
    # WHEN the job is packaged
    archive = build_function_archive(job, CATALOG, tmp_path)
    names = zipfile.ZipFile(archive).namelist()
    # THEN the core, the catalog and (where written) the handler are at the root
    assert {"meterline/__init__.py", "meterline/topology.py", "meterline/rating.py", CATALOG_NAME} <= set(
        names
    )
    assert ("aws.py" in names) == (function_source(job) / "aws.py").is_file()
    assert not [name for name in names if any(marker in name for marker in HEAVY)]
    assert archive.stat().st_size < 512 * 1024


def test_archives_are_byte_identical_when_nothing_changed(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = build_function_archive("meter", CATALOG, tmp_path / "a").read_bytes()
    assert first == build_function_archive("meter", CATALOG, tmp_path / "b").read_bytes()


@pytest.fixture(scope="session")
def lambda_like_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One clean virtualenv per session with only the Lambda runtime's packages and the layer's."""
    root = tmp_path_factory.mktemp("lambda-venv")
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "boto3",
            "orjson",
            "PyYAML",
            "iso4217",
            "aws-lambda-powertools[tracer]",
            "confluent-kafka",
            "aws-msk-iam-sasl-signer-python",
        ],
        check=True,
        capture_output=True,
    )
    return python


@pytest.mark.slow
@pytest.mark.parametrize("job", present_jobs())
def test_handler_imports_in_a_clean_virtualenv_from_its_archive(
    job: str, lambda_like_venv: Path, tmp_path: Path
) -> None:
    archive = build_function_archive(job, CATALOG, tmp_path)
    task = tmp_path / "task"
    zipfile.ZipFile(archive).extractall(task)
    code = f"import sys; sys.path.insert(0, {str(task)!r}); import aws; assert callable(aws.handler)"
    result = subprocess.run(
        [str(lambda_like_venv), "-I", "-c", code],
        cwd=task,
        capture_output=True,
        text=True,
        env={
            "PYTHONPATH": str(task),
            "AWS_DEFAULT_REGION": "us-east-1",
            "METERLINE_CATALOG": str(task / CATALOG_NAME),
        },
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert sys.executable != str(lambda_like_venv)
