"""Google's Firestore emulator (a JVM from the Google Cloud SDK's ``platform/`` folder) on a free
loopback port. Java is started directly, so the process stopped is the JVM itself."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from functools import cache
from pathlib import Path

from .process import ChildProcess, LocalServerError, answers_http, free_port

JAR = Path("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"


class EmulatorUnavailableError(LocalServerError):
    """Java or the emulator's jar is missing on this machine."""


@cache  # gcloud takes a second to answer
def sdk_root() -> Path | None:
    """The Google Cloud SDK's root: CLOUDSDK_ROOT_DIR, else what ``gcloud info`` says."""
    if configured := os.environ.get("CLOUDSDK_ROOT_DIR"):
        return Path(configured)
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    try:
        found = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Path(found.stdout.strip()) if found.returncode == 0 and found.stdout.strip() else None


def emulator_command(host: str, port: int) -> list[str]:
    """The command that starts the emulator, or EmulatorUnavailableError saying what is missing."""
    java = shutil.which("java")
    if java is None:
        raise EmulatorUnavailableError("the Firestore emulator is not available: java is not installed")
    root = sdk_root()
    if root is None:
        raise EmulatorUnavailableError(
            "the Firestore emulator is not available: the Google Cloud SDK (gcloud) is not installed"
        )
    jar = root / JAR
    if not jar.is_file():
        raise EmulatorUnavailableError(
            f"the Firestore emulator is not available: no {jar}"
            " (Debian package google-cloud-cli-firestore-emulator)"
        )
    return [java, "-cp", str(jar), MAIN_CLASS, "start", f"--host={host}", f"--port={port}"]


class FirestoreEmulator:
    def __init__(self, log: Path) -> None:
        self.port = free_port()
        command = emulator_command("127.0.0.1", self.port)
        # the JVM exits on SIGTERM; SIGINT is left to the demo's own Ctrl-C handling
        self.child = ChildProcess("the Firestore emulator", command, log, stop_signal=signal.SIGTERM)

    @property
    def host(self) -> str:
        """What FIRESTORE_EMULATOR_HOST takes."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.child.start(lambda: answers_http(f"http://{self.host}/"), timeout=60.0)

    def stop(self) -> None:
        self.child.stop()
