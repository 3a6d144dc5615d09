"""Stand-ins the contract suites start once per session: Google's Firestore emulator (a JVM from
the Google Cloud SDK) and Azurite's table service (from npm, under ``.tools``). Where one is
missing, the tests that need it skip and say what is missing."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRESTORE_JAR = Path("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
FIRESTORE_MAIN = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
FIRESTORE_PROJECT = "meterline-contract"
AZURITE_TABLE = ROOT / ".tools/node_modules/.bin/azurite-table"
# Azurite's well-known development account (public, in Azure's own documentation).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_ready(process: subprocess.Popen[bytes], url: str, what: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers: that is ready
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} was not ready after {STARTUP_SECONDS} s")


def stop(process: subprocess.Popen[bytes], how: signal.Signals) -> None:
    process.send_signal(how)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def firestore_jar() -> Path | str:
    """The emulator's jar, or why there is none."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return "the Google Cloud SDK (gcloud) is not installed"
    found = subprocess.run(
        [gcloud, "info", "--format=value(installation.sdk_root)"], capture_output=True, text=True, check=False
    )
    jar = Path(found.stdout.strip()) / FIRESTORE_JAR
    if found.returncode != 0 or not jar.is_file():
        return f"no Firestore emulator jar at {jar} (Debian package google-cloud-cli-firestore-emulator)"
    return jar


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[str]:
    """The emulator's host:port, with FIRESTORE_EMULATOR_HOST pointing at it for the session."""
    java = shutil.which("java")
    jar = firestore_jar()
    if java is None:
        pytest.skip("java is not installed: it runs the Firestore emulator")
    if isinstance(jar, str):
        pytest.skip(jar)
    host = f"127.0.0.1:{free_port()}"
    command = [
        java,
        "-cp",
        str(jar),
        FIRESTORE_MAIN,
        "start",
        "--host=127.0.0.1",
        f"--port={host.split(':')[1]}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(process, f"http://{host}/", "the Firestore emulator")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("FIRESTORE_EMULATOR_HOST", host)
            yield host
    finally:
        stop(process, signal.SIGTERM)


def reset_firestore(host: str) -> None:
    url = f"http://{host}/emulator/v1/projects/{FIRESTORE_PROJECT}/databases/(default)/documents"
    with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10):
        pass


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """A connection string to Azurite's table service, in memory, for the session."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: it runs Azurite")
    if not AZURITE_TABLE.exists():
        pytest.skip(f"Azurite is not installed at {AZURITE_TABLE} (npm install --prefix .tools azurite)")
    port = free_port()
    command = [
        str(AZURITE_TABLE),
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        str(port),
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--inMemoryPersistence",
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT / ".tools",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    try:
        wait_until_ready(process, f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}/Tables", "Azurite")
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"TableEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
        )
    finally:
        stop(process, signal.SIGINT)
