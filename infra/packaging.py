"""Lambda packages: one small zip per function (its handler, the core modules the handler can
import -- its import closure, `infra.closure` -- and the catalog) and one shared layer with the
third-party runtime dependencies, built for arm64 / Python 3.13.

The zips are deterministic (sorted entries, fixed timestamps) so an unchanged function does not
redeploy. The layer is fetched once with pip for the Lambda platform and cached by its pins.
Run `python -m infra.packaging --measure` for package sizes (cold imports: `meterline bench --cold-import`).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.closure import core_closure
from infra.config import REPO_ROOT

RUNTIME = "python3.13"
ARCHITECTURE = "arm64"
HANDLER = "aws.handler"
CATALOG_NAME = "catalog.yaml"
FUNCTIONS_DIR = REPO_ROOT / "functions"
CORE_DIR = REPO_ROOT / "shared" / "meterline"
INFRA_FUNCTIONS_DIR = Path(__file__).resolve().parent / "functions"
BUILD_DIR = REPO_ROOT / "build" / "lambda"
_PLATFORM = (
    "--platform",
    "manylinux_2_28_aarch64",
    "--platform",
    "manylinux2014_aarch64",
    "--implementation",
    "cp",
    "--python-version",
    "3.13",
    "--only-binary=:all:",
)
LAMBDA_RUNTIME_DISTRIBUTIONS = (
    "boto3",
    "botocore",
    "jmespath",
    "s3transfer",
    "urllib3",
    "python-dateutil",
    "six",
)
"""What the Lambda Python runtime comes with: they stay out of the layer."""
# The full closure of the rest, installed with --no-deps.
LAYER_DISTRIBUTIONS = (
    "orjson",
    "PyYAML",
    "iso4217",
    "aws-lambda-powertools",
    "aws-xray-sdk",
    "wrapt",
    "typing_extensions",
    "confluent-kafka",
    "aws-msk-iam-sasl-signer-python",
    "click",
)
_HANDLER_EXCLUDED = frozenset({"gcp.py", "azure.py", "tests", "__pycache__"})
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class PackagingError(RuntimeError):
    """A function or layer that cannot be packaged."""


@dataclass(frozen=True, slots=True)
class LambdaPackages:
    functions: dict[str, Path]
    layer: Path
    layer_built: bool
    """False when offline: the layer's path is planned, its content not fetched."""


def function_source(job: str) -> Path:
    """Where a job's handler lives: functions/<job>/ for the pipeline, infra/functions/<job>/ for
    the cell's own deploy-time helpers (the Kafka topic administrator)."""
    for root in (FUNCTIONS_DIR, INFRA_FUNCTIONS_DIR):
        if (root / job / "aws.py").is_file():
            return root / job
    return FUNCTIONS_DIR / job


def present_jobs() -> list[str]:
    return sorted(path.parent.name for path in FUNCTIONS_DIR.glob("*/aws.py"))


def build_packages(jobs: list[str], catalog: Path, out_dir: Path, *, offline: bool) -> LambdaPackages:
    out_dir.mkdir(parents=True, exist_ok=True)
    archives = {job: build_function_archive(job, catalog, out_dir) for job in jobs}
    layer = layer_archive_path()
    if not layer.is_file() and not offline:
        build_layer(layer)
    return LambdaPackages(archives, layer, layer.is_file())


def build_function_archive(job: str, catalog: Path, out_dir: Path) -> Path:
    """`<out_dir>/<job>.zip`: the handler at the root (handler `aws.handler`), its import closure
    in the core under `meterline/` and the stack's catalog as `catalog.yaml`. A missing handler
    still gets an archive (the catalog alone), so an offline preview works before it exists."""
    source = function_source(job)
    archive = out_dir / f"{job}.zip"
    entries = sorted(
        [*tree_entries(source, source, _HANDLER_EXCLUDED), *core_entries(source / "aws.py")],
        key=lambda entry: entry[0],
    )
    entries.append((CATALOG_NAME, catalog))
    write_zip(archive, entries)
    return archive


def core_entries(handler: Path) -> list[tuple[str, Path]]:
    """The archive entries of the core modules ``handler`` can import (none without a handler)."""
    if not handler.is_file():
        return []
    closure = core_closure(handler, CORE_DIR)
    return sorted((path.relative_to(CORE_DIR.parent).as_posix(), path) for path in closure)


def tree_entries(root: Path, base: Path, excluded: frozenset[str]) -> Iterator[tuple[str, Path]]:
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part in excluded or part.startswith("test") for part in relative.parts):
            continue
        if path.is_file() and path.suffix not in (".pyc", ".pyo"):
            yield path.relative_to(base).as_posix(), path


def layer_pins() -> list[str]:
    """The layer's requirements, pinned to the versions this checkout is tested with."""
    pins = []
    for name in LAYER_DISTRIBUTIONS:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            raise PackagingError(f"{name} is not installed here; install the project's [aws] extra") from None
    return pins


def layer_archive_path() -> Path:
    digest = hashlib.sha256("\n".join([*layer_pins(), *_PLATFORM]).encode()).hexdigest()[:12]
    return BUILD_DIR / f"layer-{digest}.zip"


def build_layer(archive: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "python"
        command = pip_target_command(target, [*_PLATFORM, *layer_pins()])
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise PackagingError(f"cannot fetch the Lambda dependency layer: {last}")
        archive.parent.mkdir(parents=True, exist_ok=True)
        write_zip(archive, sorted(tree_entries(target, target.parent, frozenset({"__pycache__", "bin"}))))


# GCP and Azure: the runtime requirements come from pyproject.toml, the one list the venv is tested with.
PYPROJECT = REPO_ROOT / "pyproject.toml"
FUNCTION_CLOUDS = ("gcp", "azure")
KAFKA_CLIENT = "confluent-kafka"
"""Both clouds' functions publish or drain through Kafka; its version range is the [aws] extra's."""
AZURE_BUILD_DIR = REPO_ROOT / "build" / "azure"
AZURE_SITE_PACKAGES = ".python_packages/lib/site-packages"
"""Where the Functions host looks for a locally built package's dependencies."""
_AZURE_PLATFORM = (
    # confluent-kafka ships manylinux_2_28 wheels only; the Python images are Debian 12 (glibc 2.36)
    "--platform",
    "manylinux_2_28_x86_64",
    "--platform",
    "manylinux2014_x86_64",
    "--implementation",
    "cp",
    "--only-binary=:all:",
)


def offline_build() -> bool:
    """True when the program is previewed offline (`infra.preview`): no package downloads."""
    return os.environ.get("METERLINE_OFFLINE") == "1"


def runtime_requirements(cloud: str) -> tuple[str, ...]:
    """What a `cloud` function needs at run time: the core `dependencies`, the cloud's extra and the
    Kafka client, as pyproject.toml specifies them."""
    if cloud not in FUNCTION_CLOUDS:
        raise PackagingError(f"no function runtime for cloud {cloud!r}; expected one of {FUNCTION_CLOUDS}")
    from packaging.requirements import Requirement  # pulumi's dependency; lazy keeps the AWS path free of it

    try:
        project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as error:
        raise PackagingError(f"cannot read [project] from {PYPROJECT}: {error}") from None
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    if cloud not in extras:
        raise PackagingError(f"{PYPROJECT}: no [project.optional-dependencies] {cloud} extra")
    requirements = [*project.get("dependencies", []), *extras[cloud]]
    named = {Requirement(line).name.lower() for line in requirements}
    if KAFKA_CLIENT not in named:
        every = [line for lines in extras.values() for line in lines]
        kafka = [line for line in every if Requirement(line).name == KAFKA_CLIENT]
        if not kafka:
            raise PackagingError(f"{PYPROJECT}: no extra names {KAFKA_CLIENT}")
        requirements.append(kafka[0])
    return tuple(requirements)


def runtime_pins(cloud: str, python_version: str) -> list[str]:
    """The full dependency closure of `runtime_requirements(cloud)` on Linux x86_64 and
    `python_version`, pinned to the versions installed here (like `layer_pins`)."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    environment = {
        **default_environment(),
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    pins: dict[str, str] = {}
    done: set[tuple[str, str]] = set()
    pending = [(Requirement(line), "the project") for line in runtime_requirements(cloud)]
    while pending:
        requirement, wanted_by = pending.pop()
        name = canonicalize_name(requirement.name)
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise PackagingError(
                f"{requirement.name} (wanted by {wanted_by}) is not installed here; "
                f"install the [{cloud}] extra"
            ) from None
        if not requirement.specifier.contains(version, prereleases=True):
            raise PackagingError(
                f"{requirement.name} {version} is installed here; {wanted_by} wants {requirement}"
            )
        pins[name] = f"{name}=={version}"
        for extra in ("", *sorted(requirement.extras)):
            if (name, extra) in done:
                continue
            done.add((name, extra))
            for line in importlib.metadata.requires(name) or []:
                child = Requirement(line)
                if child.marker is None or child.marker.evaluate({**environment, "extra": extra}):
                    pending.append((child, f"{name}=={version}"))
    return sorted(pins.values())


def vendor_command(pins: list[str], target: Path, python_version: str) -> list[str]:
    """The pip call that installs `pins` for the Functions host's platform into `target`."""
    return pip_target_command(target, [*_AZURE_PLATFORM, "--python-version", python_version, *pins])


def pip_target_command(target: Path, arguments: list[str]) -> list[str]:
    """pip installing exactly the given pins (no resolver, no bytecode) into `target`."""
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-compile",
        "--target",
        str(target),
        *arguments,
    ]


def vendored_archive_path(cloud: str, python_version: str) -> Path:
    """The cached zip of a cloud's dependencies under `.python_packages/lib/site-packages/`, named by
    a digest of its pins and platform so a change of either builds a new one."""
    key = [*runtime_pins(cloud, python_version), *_AZURE_PLATFORM, python_version]
    digest = hashlib.sha256("\n".join(key).encode()).hexdigest()[:12]
    return AZURE_BUILD_DIR / f"site-packages-{cloud}-{digest}.zip"


def build_vendored(cloud: str, python_version: str, archive: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / AZURE_SITE_PACKAGES
        command = vendor_command(runtime_pins(cloud, python_version), target, python_version)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise PackagingError(f"cannot fetch the {cloud} functions' dependencies: {last}")
        archive.parent.mkdir(parents=True, exist_ok=True)
        write_zip(archive, sorted(_vendored_tree(target, Path(scratch))))


def vendored_dependencies(cloud: str, python_version: str, *, offline: bool) -> Path | None:
    """The cached dependencies zip, fetched on first use; None offline when it is not cached yet."""
    archive = vendored_archive_path(cloud, python_version)
    if not archive.is_file() and not offline:
        build_vendored(cloud, python_version, archive)
    return archive if archive.is_file() else None


def _vendored_tree(root: Path, base: Path) -> Iterator[tuple[str, Path]]:
    # unlike tree_entries, keeps modules named test*: libraries import their own (werkzeug.test)
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] == "bin" or "__pycache__" in relative.parts:
            continue
        if path.is_file() and path.suffix not in (".pyc", ".pyo"):
            yield path.relative_to(base).as_posix(), path


def write_zip(
    archive: Path, entries: Sequence[tuple[str, Path | bytes]], *, base: Path | None = None
) -> None:
    """`archive` = the entries of the zip `base` when given (copied, not recompressed), then `entries`
    in their order, with fixed timestamps and modes so the same content gives the same bytes."""
    partial = archive.with_suffix(".zip.partial")
    if base is None:
        partial.unlink(missing_ok=True)
    else:
        shutil.copyfile(base, partial)
    with zipfile.ZipFile(partial, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as bundle:
        for name, content in entries:
            info = zipfile.ZipInfo(name, _ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, content if isinstance(content, bytes) else content.read_bytes())
    partial.replace(archive)


def measure(jobs: list[str], catalog: Path) -> None:
    """Resource counts and archive sizes (each handler's cold import: `meterline bench --cold-import`)."""
    from infra.config import stack_names
    from infra.preview import preview_stack

    for stack in stack_names():
        print(f"stack {stack}: {len(preview_stack(stack)['resources'])} resources")
    with tempfile.TemporaryDirectory() as scratch:
        for job in jobs:
            archive = build_function_archive(job, catalog, Path(scratch))
            print(f"function {job}: {archive.stat().st_size / 1024:.1f} KiB zipped")
        layer = layer_archive_path()
        if layer.is_file():
            print(f"layer {layer.name}: {layer.stat().st_size / 1024 / 1024:.1f} MiB zipped")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.packaging")
    parser.add_argument("--measure", action="store_true", help="print resource counts and package sizes")
    parser.add_argument("--layer", action="store_true", help="fetch and cache the dependency layer")
    args = parser.parse_args()
    from meterline.topology import FUNCTIONS

    catalog = REPO_ROOT / "shared" / "meterline" / "samples" / "catalog.yaml"
    if args.layer:
        build_layer(layer_archive_path())
        print(layer_archive_path())
    if args.measure:
        measure([function.job for function in FUNCTIONS], catalog)
    return 0


if __name__ == "__main__":
    sys.exit(main())
