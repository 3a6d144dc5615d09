"""One Cloud Run function instance in a process of its own, as on Google Cloud: the entrypoint's
module, its clients and its share of the CPU are its own, so the functions of the demo run side
by side instead of taking turns on one interpreter. It takes one request at a time over a pipe —
a CloudEvent, or an HTTP call with a JSON body — and answers with what the entrypoint returned, or
what it raised as one line (the trigger delivers again)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from .process import die_with

if TYPE_CHECKING:
    from meterline.adapters.gcp_functions import GcpSettings

STOP_SECONDS = 10.0


class InstanceError(RuntimeError):
    """What the entrypoint raised, as the trigger sees it: the event was not acknowledged."""


class InstanceProcess:
    def __init__(self, job: str, index: int, settings: GcpSettings) -> None:
        self.name = f"function {job} #{index}"
        context = multiprocessing.get_context("spawn")  # no fork: the parent runs gRPC threads
        self._connection, remote = context.Pipe()
        self._process = context.Process(
            target=serve, args=(job, index, settings, remote, os.getpid()), name=self.name, daemon=True
        )
        self._process.start()
        remote.close()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def call(self, attributes: dict[str, Any], data: Any) -> None:
        """A CloudEvent to the entrypoint."""
        self._ask(("event", attributes, data))

    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """An HTTP POST with a JSON body to the entrypoint: its answer and status."""
        answer: tuple[dict[str, Any], int] = self._ask(("http", body))
        return answer

    def _ask(self, request: tuple[Any, ...]) -> Any:
        try:
            self._connection.send(request)
            error, answer = self._connection.recv()
        except (EOFError, OSError) as error:
            raise InstanceError(f"{self.name} exited (status {self._process.exitcode}): {error}") from None
        if error is not None:
            raise InstanceError(str(error))
        return answer

    def stop(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(OSError):
                self._connection.send(None)
            self._process.join(STOP_SECONDS)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._connection.close()


def serve(job: str, index: int, settings: GcpSettings, connection: Connection, parent: int) -> None:
    """The instance's side: the entrypoint, its jobs bootstrapped from the cell's settings."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the demo's to handle: it stops us
    die_with(parent)  # unless the demo is killed first: then the kernel does
    from cloudevents.http import CloudEvent

    from meterline.bootstrap import bootstrap

    from .gcp_runtime import http_request, load_entrypoint, quiet_google_imports

    quiet_google_imports()
    module = load_entrypoint(job, index)
    module.jobs.use(bootstrap(settings))
    while True:
        try:
            request = connection.recv()
        except EOFError:
            break
        if request is None:
            break
        try:
            if request[0] == "http":
                answer = module.handler(http_request(request[1]))
            else:
                answer = module.handler(CloudEvent(*request[1:]))
        except Exception as error:
            connection.send((f"{type(error).__name__}: {error}", None))
        else:
            connection.send((None, answer))
    module.jobs.release()  # the Kafka producer flushes and closes now
