"""Child processes of the local runtime: started on a free loopback port, stopped for certain."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO


class LocalServerError(RuntimeError):
    """A local server could not start, or is not reachable."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def answers_http(url: str) -> bool:
    """Whether a server answers ``url`` at all: an HTTP error status is an answer too."""
    try:
        with urllib.request.urlopen(url, timeout=0.5):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


class ChildProcess:
    """One server process; ``stop`` sends ``stop_signal`` first, then kills what will not stop."""

    def __init__(
        self, name: str, command: Sequence[str], log: Path, stop_signal: int = signal.SIGINT
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log
        self.stop_signal = stop_signal
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, ready: Callable[[], bool], timeout: float = 20.0) -> None:
        self._log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops its servers in order
            )
        except OSError as error:
            raise LocalServerError(
                f"{self.name}: cannot start {self.command[0]} ({error.strerror})"
            ) from None
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None:
                raise LocalServerError(
                    f"{self.name} exited with status {self.process.returncode}: see {self.log_path}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise LocalServerError(
                    f"{self.name} was not ready within {timeout:.0f}s: see {self.log_path}"
                )
            time.sleep(0.03)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(self.stop_signal)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
