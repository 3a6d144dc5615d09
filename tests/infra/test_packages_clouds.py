"""GCP and Azure function packages carry what they need to run: GCP's requirements.txt is the
pyproject.toml list; an Azure package is a local build (host.json at its root, the dependencies for
Linux and the app's Python under .python_packages/lib/site-packages), fetched never when offline."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("azure.functions", reason="azure-functions (the azure extra) is not installed")

from infra import packaging
from infra.components.azure.functions import PYTHON_VERSION, build_package
from infra.components.gcp.source import source_archive
from infra.packaging import (
    AZURE_SITE_PACKAGES,
    CATALOG_NAME,
    FUNCTIONS_DIR,
    runtime_pins,
    runtime_requirements,
    vendor_command,
    vendored_archive_path,
    vendored_dependencies,
)
from meterline.topology import CELL_FUNCTIONS
from tests.infra.imports import third_party_imports

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "shared" / "meterline" / "samples" / "catalog.yaml"
JOBS = [function.job for function in CELL_FUNCTIONS]


def pyproject_list(cloud: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    [kafka] = [line for line in extras["aws"] if line.startswith("confluent-kafka")]
    return [*project["dependencies"], *extras[cloud], kafka]


@pytest.fixture
def no_pip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty dependency cache and a subprocess.run that fails the test if anything is fetched."""

    def fetch(*args: Any, **kwargs: Any) -> None:
        pytest.fail(f"offline packaging ran a subprocess: {args[0] if args else kwargs}")

    monkeypatch.setattr(packaging, "AZURE_BUILD_DIR", tmp_path / "cache")
    monkeypatch.setattr(subprocess, "run", fetch)
    return tmp_path / "cache"


@pytest.mark.parametrize("cloud", ["gcp", "azure"])
def test_runtime_requirements_are_the_core_the_clouds_extra_and_the_kafka_client(cloud: str) -> None:
    assert list(runtime_requirements(cloud)) == pyproject_list(cloud)


def test_gcp_requirements_txt_in_the_archive_is_the_pyproject_list(tmp_path: Path) -> None:
    # WHEN a GCP job is packaged
    archive, _ = source_archive("meter", CATALOG, tmp_path)
    # THEN Cloud Build installs exactly pyproject's list, the event types and pins included
    lines = zipfile.ZipFile(archive).read("requirements.txt").decode().splitlines()
    assert lines == pyproject_list("gcp")
    assert {"google-events", "cloudevents"} <= {line.split(">")[0].split("=")[0] for line in lines}
    assert any(line.startswith("protobuf") and "<6" in line for line in lines)


@pytest.mark.parametrize("cloud", ["gcp", "azure"])
def test_every_third_party_module_the_handlers_import_is_in_the_runtime_closure(cloud: str) -> None:
    # GIVEN the distributions the package carries (the closure, pinned to what is installed here)
    carried = {pin.split("==")[0] for pin in runtime_pins(cloud, PYTHON_VERSION)}
    providers = importlib.metadata.packages_distributions()
    missing = []
    for module in sorted(third_party_imports(cloud)):
        # namespace packages (google, azure) are shared: look the module up by its longest known prefix
        parts = module.split(".")
        candidates = [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
        distributions = next((providers[c] for c in candidates if c in providers), [])
        names = {d.lower().replace("_", "-") for d in distributions}
        if not names & carried or not any(_provides(d, module) for d in distributions):
            missing.append(module)
    # THEN every one is carried
    assert missing == []


def _provides(distribution: str, module: str) -> bool:
    files = importlib.metadata.files(distribution) or []
    stem = module.replace(".", "/")
    return any(str(f).startswith((stem + "/", stem + ".")) for f in files)


@pytest.mark.parametrize("job", JOBS)
def test_azure_package_has_host_json_and_the_function_app_at_its_root(job: str, tmp_path: Path) -> None:
    # WHEN the job is packaged (without dependencies)
    archive = build_package(job, CATALOG, tmp_path, None)
    package = zipfile.ZipFile(archive)
    names = set(package.namelist())
    # THEN the host finds host.json and the FunctionApp at the root, with the blueprint it registers
    assert {"host.json", "function_app.py", f"{job}_function.py", CATALOG_NAME} <= names
    host = json.loads(package.read("host.json"))
    assert host["version"] == "2.0"
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    assert f"from {job}_function import blueprint" in package.read("function_app.py").decode()
    assert not [name for name in names if name.startswith(".python_packages/")]


def test_offline_packaging_fetches_nothing_and_bundles_no_dependencies(no_pip: Path, tmp_path: Path) -> None:
    # GIVEN no cached dependencies and a subprocess.run that fails the test
    # WHEN the dependencies are asked for offline
    dependencies = vendored_dependencies("azure", PYTHON_VERSION, offline=True)
    # THEN none are fetched and the package has none
    assert dependencies is None
    assert not no_pip.exists()
    names = zipfile.ZipFile(build_package("meter", CATALOG, tmp_path, dependencies)).namelist()
    assert "host.json" in names
    assert not [name for name in names if name.startswith(".python_packages/")]


def test_cached_dependencies_are_bundled_offline_without_fetching(no_pip: Path, tmp_path: Path) -> None:
    # GIVEN a cache built earlier for these pins
    cached = vendored_archive_path("azure", PYTHON_VERSION)
    cached.parent.mkdir(parents=True)
    with zipfile.ZipFile(cached, "w") as bundle:
        bundle.writestr(f"{AZURE_SITE_PACKAGES}/orjson/__init__.py", "")
    # WHEN packaging offline
    dependencies = vendored_dependencies("azure", PYTHON_VERSION, offline=True)
    archive = build_package("meter", CATALOG, tmp_path, dependencies)
    # THEN the cache's entries are in the package beside the app
    names = zipfile.ZipFile(archive).namelist()
    assert dependencies == cached
    assert {f"{AZURE_SITE_PACKAGES}/orjson/__init__.py", "host.json", "function_app.py"} <= set(names)


def test_azure_packages_are_byte_identical_when_nothing_changed(no_pip: Path, tmp_path: Path) -> None:
    # GIVEN a cached dependencies zip
    cached = tmp_path / "site-packages.zip"
    with zipfile.ZipFile(cached, "w") as bundle:
        bundle.writestr(f"{AZURE_SITE_PACKAGES}/orjson/__init__.py", "")
    # WHEN the same job is packaged twice
    first = build_package("rate", CATALOG, tmp_path / "a", cached).read_bytes()
    # THEN the bytes (and so the blob's sha256) do not change
    assert first == build_package("rate", CATALOG, tmp_path / "b", cached).read_bytes()


def test_the_cache_is_named_by_the_pins_and_the_python_version() -> None:
    assert vendored_archive_path("azure", PYTHON_VERSION) == vendored_archive_path("azure", PYTHON_VERSION)
    assert vendored_archive_path("azure", PYTHON_VERSION) != vendored_archive_path("azure", "3.11")


def test_vendoring_installs_the_pinned_closure_as_linux_wheels_for_the_apps_python(tmp_path: Path) -> None:
    pins = runtime_pins("azure", PYTHON_VERSION)
    command = vendor_command(pins, tmp_path / AZURE_SITE_PACKAGES, PYTHON_VERSION)
    assert command[command.index("--target") + 1] == str(tmp_path / AZURE_SITE_PACKAGES)
    assert command[command.index("--python-version") + 1] == PYTHON_VERSION
    assert {"--no-deps", "--only-binary=:all:", "manylinux_2_28_x86_64", "manylinux2014_x86_64"} <= set(
        command
    )
    assert command[-len(pins) :] == pins
    installed = {f"{d.metadata['Name']}".lower(): d.version for d in importlib.metadata.distributions()}
    for pin in pins:
        name, version = pin.split("==")
        assert installed.get(name) == version or installed.get(name.replace("-", "_")) == version, pin
    assert {"azure-functions", "azure-data-tables", "azure-core", "confluent-kafka", "orjson"} <= {
        pin.split("==")[0] for pin in pins
    }


def test_azure_stack_outputs_say_whether_dependencies_were_bundled(
    previews: dict[str, dict[str, Any]],
) -> None:
    cached = vendored_archive_path("azure", PYTHON_VERSION).is_file()
    azure = [build for build in previews.values() if build["outputs"]["cost_inputs"]["cloud"] == "azure"]
    assert azure
    for build in azure:
        apps = [r for r in build["outputs"]["cost_inputs"]["resources"] if r["kind"] == "function_app_flex"]
        assert len(apps) == len(CELL_FUNCTIONS)
        assert {app["dependencies_bundled"] for app in apps} == {cached}


@pytest.mark.slow
def test_a_vendored_package_indexes_its_function_with_nothing_but_its_own_contents(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN the dependencies really fetched, for this interpreter so the package can be imported here
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    monkeypatch.setattr(packaging, "AZURE_BUILD_DIR", tmp_path / "cache")
    dependencies = vendored_dependencies("azure", here, offline=False)
    assert dependencies is not None
    for job in [job for job in JOBS if (FUNCTIONS_DIR / job / "azure.py").is_file()]:
        # WHEN the package is unpacked and loaded without site-packages (-S) or the environment (-I)
        root = tmp_path / job
        zipfile.ZipFile(build_package(job, CATALOG, tmp_path / "out", dependencies)).extractall(root)
        code = (
            "import site, sys; sys.path.insert(0, '.'); site.addsitedir(sys.argv[1]); import function_app; "
            "print(' '.join(f.get_function_name() for f in function_app.app.get_functions()))"
        )
        result = subprocess.run(
            [sys.executable, "-I", "-S", "-c", code, str(root / AZURE_SITE_PACKAGES)],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        # THEN the FunctionApp indexes the job's function
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.split() == [job]
