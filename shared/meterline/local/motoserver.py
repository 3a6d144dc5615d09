"""A moto server in its own process, so that the stand-in for DynamoDB has a core of its own."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from .process import ChildProcess, free_port


class MotoServer:
    def __init__(self, log: Path) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.child = ChildProcess("the moto server", command, log)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.child.start(lambda: reachable(self.endpoint))

    def stop(self) -> None:
        self.child.stop()


def reachable(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=0.5):
            return True
    except (OSError, ValueError):  # ValueError: not a URL urllib can open
        return False
