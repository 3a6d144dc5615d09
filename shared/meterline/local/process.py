"""Child processes of the local runtime: started on a free loopback port, stopped for certain —
in order when the run ends, is interrupted or is told to stop (SIGTERM, SIGHUP), and by the kernel
when the run itself dies (Linux's parent-death signal), so no server outlives the demo."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import IO


class LocalServerError(RuntimeError):
    """A local server could not start, or is not reachable."""


class StoppedError(BaseException):
    """The run was told to stop by a signal: a BaseException, so that it unwinds every ``with``
    (each stopping its servers) and no ``except Exception`` takes it for a failure to retry."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def stopped_by_signals(*signums: int) -> Iterator[None]:
    """While inside, each of ``signums`` (default SIGTERM and SIGHUP) raises StoppedError in the
    main thread, as Ctrl-C raises KeyboardInterrupt; a second one while stopping is ignored."""

    def stop(signum: int, frame: FrameType | None) -> None:
        for each in signums:
            signal.signal(each, signal.SIG_IGN)
        raise StoppedError(signum)

    signums = signums or (signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, stop) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _prctl()


def die_with(parent: int) -> None:
    """In a child process: be killed when ``parent`` dies, even by SIGKILL (Linux: PR_SET_PDEATHSIG,
    tied to the parent's thread that started the child: the demo starts every server from its main
    thread), or exit now if it already has. Elsewhere a no-op: the parent's own stopping is all."""
    if _PRCTL is None:
        return
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the signal was asked for
        os._exit(1)


def dying_with_this_process() -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child dies with this process."""
    return functools.partial(die_with, os.getpid())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except (OSError, ValueError):  # ValueError: a host name that cannot be encoded
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
                preexec_fn=dying_with_this_process(),  # and if the demo is killed, the kernel does
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
