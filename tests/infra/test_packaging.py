"""Each function's archive holds its handler, the core modules it can import (exactly those) and the
catalog, and nothing heavy."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import venv
import zipfile
from modulefinder import ModuleFinder
from pathlib import Path

import pytest

from infra.components.azure.functions import build_package
from infra.components.gcp.source import source_archive
from infra.packaging import (
    CATALOG_NAME,
    LAMBDA_RUNTIME_DISTRIBUTIONS,
    LAYER_DISTRIBUTIONS,
    build_function_archive,
    present_jobs,
)
from meterline.topology import CELL_FUNCTIONS, CLOSE, FUNCTIONS, HOME_FUNCTIONS, RATE
from tests.infra.imports import third_party_imports

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "shared" / "meterline" / "samples" / "catalog.yaml"
HEAVY = (
    "boto3/",
    "botocore/",
    "pulumi",
    "tests/",
    "test_",
    "__pycache__",
    ".pyc",
    "meterline/cli.py",
    "meterline/bench",
    "meterline/generate.py",
    "meterline/local/",
    "meterline/samples/",
)


def module_finder_closure(handler: Path) -> set[str]:
    """The core files ``handler`` can import, as the standard library's ModuleFinder sees them
    (byte code, imports inside functions included), searching the core alone."""
    finder = ModuleFinder(path=[str(ROOT / "shared")])
    finder.run_script(str(handler))
    return {
        Path(module.__file__).relative_to(ROOT / "shared").as_posix()
        for name, module in finder.modules.items()
        if name.split(".")[0] == "meterline" and module.__file__
    }


def archive(cloud: str, job: str, out: Path) -> zipfile.ZipFile:
    if cloud == "aws":
        return zipfile.ZipFile(build_function_archive(job, CATALOG, out))
    if cloud == "gcp":
        return zipfile.ZipFile(source_archive(job, CATALOG, out)[0])
    return zipfile.ZipFile(build_package(job, CATALOG, out, None))


HANDLERS = [
    *[(cloud, function.job) for function in CELL_FUNCTIONS for cloud in ("aws", "gcp", "azure")],
    *[("aws", function.job) for function in HOME_FUNCTIONS],  # the billing home runs on AWS
    *[(cloud, function.job) for function in (RATE, CLOSE) for cloud in ("gcp", "azure")],
]
"""Every handler: a cell's jobs on every cloud, the home's on AWS, and the single-cell pipeline's
rate and close (the local runtime's, on GCP and Azure too)."""


@pytest.mark.parametrize(("cloud", "job"), HANDLERS)
def test_each_archive_holds_exactly_its_handlers_import_closure_in_the_core(
    cloud: str, job: str, tmp_path: Path
) -> None:
    # GIVEN a job's handler on a cloud
    handler = ROOT / "functions" / job / f"{cloud}.py"

    # WHEN its archive is built
    names = {name for name in archive(cloud, job, tmp_path).namelist() if name.startswith("meterline/")}

    # THEN its core files are the handler's import closure, found independently, and nothing else
    assert names == module_finder_closure(handler)
    assert "meterline/topology.py" in names and "meterline/cli.py" not in names


@pytest.mark.parametrize("job", [function.job for function in FUNCTIONS] + ["topics"])
def test_archive_holds_the_handler_its_core_and_the_catalog_and_nothing_heavy(
    job: str, tmp_path: Path
) -> None:
    # WHEN the job is packaged
    archive = build_function_archive(job, CATALOG, tmp_path)
    names = zipfile.ZipFile(archive).namelist()
    # THEN the handler and the catalog are at the root, with the core the handler imports (the
    # topic administrator imports none of it)
    assert {"aws.py", CATALOG_NAME} <= set(names)
    core = {"meterline/__init__.py", "meterline/topology.py", "meterline/rating.py"}
    assert core <= set(names) if job != "topics" else not [n for n in names if n.startswith("meterline/")]
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


def test_every_third_party_module_an_aws_handler_can_import_is_in_the_layer_or_the_runtime() -> None:
    # GIVEN what a Lambda has beside its archive: the shared layer and the Python runtime's own
    carried = {_normal(name) for name in (*LAYER_DISTRIBUTIONS, *LAMBDA_RUNTIME_DISTRIBUTIONS)}
    providers = importlib.metadata.packages_distributions()
    # WHEN every module the AWS handlers' closure imports at run time (lazy imports too) is looked up
    missing = [
        module
        for module in sorted(third_party_imports("aws"))
        if not {_normal(name) for name in providers.get(module.split(".")[0], [])} & carried
    ]
    # THEN each comes from one of them: a job's first call never fails on an import
    assert missing == []


def _normal(distribution: str) -> str:
    return distribution.lower().replace("_", "-")
