"""What the local cells (AWS's, GCP's and Azure's) share: their servers, triggers and functions
started together and stopped together in reverse (also on Ctrl-C), and the driver's wait, which
stops a run whose trigger failed or that made no progress for ``STALL_SECONDS``.

A cell says what differs: how it starts (``_start``), what counts as progress (``_progress``),
how a failed trigger is reported (``failed``) and what its ledgers are (``describe``)."""

from __future__ import annotations

import contextlib
import gc
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self, TextIO, TypeVar

from .broker import TansuBroker
from .feed import UsageFeed
from .process import ChildProcess, LocalServerError, accepts_connections

STALL_SECONDS = 120.0


class PipelineStalledError(RuntimeError):
    pass


@dataclass(frozen=True)
class CellOptions:
    catalog: Path
    log: Path
    on_failure: Path
    kafka: str | None = None
    """HOST:PORT of a Kafka broker to use instead of starting Tansu."""
    aws_endpoint: str | None = None
    """URL of a DynamoDB endpoint (moto server) to use instead of starting one."""
    region: str = "us-east-1"


class DriverClock:
    """The local cell's time: the system's until the driver sets it, as the demo does to close a
    month in seconds. Every function of the cell reads it (the clock port of ``bootstrap``)."""

    def __init__(self) -> None:
        self._at: datetime | None = None

    def set(self, at: datetime) -> None:
        self._at = at

    def __call__(self) -> datetime:
        return self._at or datetime.now(UTC)


class Watched(Protocol):
    @property
    def failure(self) -> BaseException | None: ...


class Positioned(Watched, Protocol):
    @property
    def positions(self) -> Mapping[int, int]:
        """Per partition of usage.events, the next offset to deliver."""


class Metering(Positioned, Protocol):
    @property
    def started(self) -> threading.Event: ...


class Child(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    def stop(self) -> None: ...


class Server(Protocol):
    @property
    def child(self) -> ChildProcess: ...

    def start(self) -> None: ...


S = TypeVar("S", bound=Server)


class FunctionRuntime(Protocol):
    def shutdown(self) -> None: ...


class CellLifecycle(ABC):
    ledgers: ClassVar[str]
    """The store and its stand-in, as ``describe`` names them."""
    ledger_names: ClassVar[str]
    labels: ClassVar[tuple[str, str]]
    """What the demo's progress bars of meter and aggregate say."""
    failed: ClassVar[str]
    """How a failed trigger stops the run, ``{}`` its failure."""
    prefix_format: ClassVar[str] = "demo-{}-"

    bootstrap: str
    endpoint: str
    runtime: FunctionRuntime
    feed: UsageFeed
    meter: Metering
    usage_stream: Watched
    aggregates_stream: Watched

    def __init__(self, options: CellOptions) -> None:
        self.options = options
        self.children: list[Child] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self._exit = contextlib.ExitStack()
        self.prefix = self.prefix_format.format(uuid.uuid4().hex[:8])
        self.clock = DriverClock()

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._exit.close()

    def describe(self) -> str:
        return (
            f"Kafka {self.bootstrap} · {self.ledgers} {self.endpoint}"
            f" · {self.ledger_names} {self.prefix}* · log {self.options.log}"
        )

    # starting and stopping ----------------------------------------------------------------------

    @abstractmethod
    def _start(self) -> None: ...

    def _open_log(self) -> TextIO:
        """The run's log; the servers started after it are stopped before it closes."""
        log: TextIO = self._exit.enter_context(self.options.log.open("a", buffering=1))
        self._exit.callback(self._stop_children)
        return log

    def _kafka(self) -> str:
        """The broker's bootstrap: the one the options name, or a Tansu of this cell's own."""
        if self.options.kafka:
            host, _, port = self.options.kafka.rpartition(":")
            if not accepts_connections(host, int(port)):
                raise LocalServerError(f"--kafka {self.options.kafka}: no broker answers there")
            return self.options.kafka
        return self._started(TansuBroker(self.options.log.with_suffix(".broker.log"))).bootstrap

    def _started(self, server: S) -> S:
        self.children.append(server.child)  # stopped on the way out even if it never became ready
        server.start()
        return server

    def _spawn(self, run: Callable[..., None], *arguments: Any, name: str | None = None) -> None:
        """``run(self.stop, *arguments)`` on a thread of its own, joined on the way out."""
        thread = threading.Thread(target=run, args=(self.stop, *arguments), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _await_start(self, trigger: Metering, what: str) -> None:
        if not trigger.started.wait(30) or trigger.failure is not None:
            raise LocalServerError(f"{what} did not start: {trigger.failure}")

    def _stop_threads(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _release_clients(self) -> None:
        """The functions' clients and the feed's producer close now, while the servers still run."""
        self.runtime.shutdown()
        if hasattr(self, "feed"):
            del self.feed
        gc.collect()

    def _stop_children(self) -> None:
        for child in reversed(self.children):
            child.stop()

    # driving ------------------------------------------------------------------------------------

    def lag(self) -> dict[int, int]:
        return {
            p: end - self.meter.positions.get(p, self.feed.firsts.get(p, end))
            for p, end in sorted(self.feed.ends.items())
        }

    def _wait_past(self, trigger: Positioned, ends: Mapping[int, int], tick: Callable[[], None]) -> None:
        """Until ``trigger`` went past ``ends`` on every partition."""
        self._wait(lambda: all(trigger.positions.get(p, 0) >= end for p, end in ends.items()), tick)

    def _wait(self, done: Callable[[], bool], tick: Callable[[], None]) -> None:
        progress, moved = self._progress(), time.monotonic()
        while not done():
            for trigger in (self.meter, self.usage_stream, self.aggregates_stream):
                if trigger.failure is not None:
                    raise PipelineStalledError(self.failed.format(trigger.failure))
            now = self._progress()
            if now != progress:
                progress, moved = now, time.monotonic()
            elif time.monotonic() - moved > STALL_SECONDS:
                raise PipelineStalledError(
                    f"no progress for {STALL_SECONDS:.0f}s{self._stalled_because()}: see {self.options.log}"
                )
            tick()
            time.sleep(0.1)
        tick()

    @abstractmethod
    def _progress(self) -> tuple[int, ...]:
        """Counters that move while the pipeline works: unchanged for STALL_SECONDS, it stalled."""

    def _stalled_because(self) -> str:
        return ""
