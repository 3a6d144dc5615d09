"""Azurite's table service (Microsoft's Azure Storage emulator, from npm) on a free loopback port, in
memory: the Azure Tables of a local cell. It lives under ``.tools/`` of the checkout, where ``make
test`` puts it; the demo installs it there with npm when it is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .process import ChildProcess, LocalServerError, answers_http, dying_with_this_process, free_port
from .runtime import FUNCTIONS_ROOT

TOOLS = FUNCTIONS_ROOT.parent / ".tools"
AZURITE_TABLE = TOOLS / "node_modules" / ".bin" / "azurite-table"
PACKAGE = "azurite@3"
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's well-known development account (public, in Azure's own documentation)."""
INSTALL_SECONDS = 300


class AzuriteUnavailableError(LocalServerError):
    """Node.js, or Azurite and npm to install it, are missing on this machine."""


def missing() -> str | None:
    """What stops Azurite from running here, or None (it may still need installing)."""
    if shutil.which("node") is None:
        return "Azurite (the Azure Tables stand-in) needs Node.js: node is not installed"
    if not AZURITE_TABLE.exists() and shutil.which("npm") is None:
        return f"Azurite is not installed at {AZURITE_TABLE} and npm, which would install it, is not found"
    return None


def install(log: Path) -> None:
    """``npm install --prefix .tools azurite@3``, as ``make test`` does, unless it is there already."""
    if reason := missing():
        raise AzuriteUnavailableError(reason)
    if AZURITE_TABLE.exists():
        return
    npm = shutil.which("npm")
    assert npm is not None
    TOOLS.mkdir(exist_ok=True)
    command = [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(TOOLS), PACKAGE]
    with log.open("ab") as out:
        try:
            done = subprocess.run(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=INSTALL_SECONDS,
                check=False,
                preexec_fn=dying_with_this_process(),
            )
        except subprocess.TimeoutExpired:
            raise AzuriteUnavailableError(f"npm did not install {PACKAGE} in {INSTALL_SECONDS}s") from None
    if done.returncode != 0 or not AZURITE_TABLE.exists():
        raise AzuriteUnavailableError(f"npm could not install {PACKAGE} into {TOOLS}: see {log}")


class AzuriteTables:
    def __init__(self, log: Path) -> None:
        install(log)
        self.port = free_port()
        command = [
            str(AZURITE_TABLE),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(self.port),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--inMemoryPersistence",
            "--silent",  # no access log line per request
        ]
        self.child = ChildProcess("Azurite (Azure Tables)", command, log)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"TableEndpoint={self.endpoint};"
        )

    def start(self) -> None:
        self.child.start(lambda: answers_http(f"{self.endpoint}/Tables"), timeout=60.0)

    def stop(self) -> None:
        self.child.stop()
