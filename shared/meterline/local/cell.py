"""One billing cell on this machine: servers, topics and tables, the functions, and the event
source mappings that drive them — started together, stopped together (also on Ctrl-C)."""

from __future__ import annotations

import contextlib
import gc
import resource
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TextIO

from meterline.adapters.dynamodb import DynamoStore, create_tables, physical_name
from meterline.topology import (
    AGGREGATE,
    AGGREGATES_TABLE,
    CLOSE,
    METER,
    RATE,
    TOPICS,
    USAGE_EVENTS,
    USAGE_TABLE,
)

from .broker import TansuBroker, create_topics
from .esm import KafkaEventSourceMapping
from .feed import UsageFeed
from .motoserver import MotoServer, reachable
from .process import ChildProcess, LocalServerError
from .runtime import CellSettings, Runtime
from .streams import StreamEventSourceMapping

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


class LocalCell:
    def __init__(self, options: CellOptions) -> None:
        self.options = options
        self.children: list[ChildProcess] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self._exit = contextlib.ExitStack()
        self.prefix = f"demo-{uuid.uuid4().hex[:8]}-"

    def __enter__(self) -> LocalCell:
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

    def _start(self) -> None:
        options = self.options
        log: TextIO = self._exit.enter_context(options.log.open("a", buffering=1))
        self._exit.callback(self._stop_children)
        self.bootstrap = options.kafka or self._child(TansuBroker(options.log.with_suffix(".broker.log")))
        self.endpoint = options.aws_endpoint or self._child(MotoServer(options.log.with_suffix(".moto.log")))
        if options.aws_endpoint and not reachable(options.aws_endpoint):
            raise LocalServerError(f"--aws-endpoint {options.aws_endpoint}: no moto server answers there")
        create_topics(self.bootstrap, TOPICS)
        settings = CellSettings(options.catalog, self.prefix, self.bootstrap, self.endpoint, options.region)
        # Powertools logs and EMF metrics print to stdout: they go to the log, the terminal shows the demo
        self._exit.enter_context(contextlib.redirect_stdout(log))
        self.runtime = Runtime(settings, {f.job: f.memory_mb for f in (METER, AGGREGATE, RATE, CLOSE)})
        import boto3

        dynamodb = boto3.client("dynamodb", region_name=options.region, endpoint_url=self.endpoint)
        streams = boto3.client("dynamodbstreams", region_name=options.region, endpoint_url=self.endpoint)
        create_tables(dynamodb, self.prefix)
        self.store = DynamoStore(dynamodb, self.prefix)
        self.feed = UsageFeed(self.bootstrap, USAGE_EVENTS.name)
        self.meter = KafkaEventSourceMapping(
            self.runtime, METER, USAGE_EVENTS, self.bootstrap, options.on_failure, self.feed.firsts
        )
        self.usage_stream, self.aggregates_stream = (
            StreamEventSourceMapping(
                self.runtime,
                function,
                dynamodb,
                streams,
                physical_name(self.prefix, table),
                options.region,
                options.on_failure,
            )
            for function, table in ((AGGREGATE, USAGE_TABLE), (RATE, AGGREGATES_TABLE))
        )
        self._exit.callback(self._release_clients)
        self._exit.callback(self._stop_threads)
        for name, mapping in (
            ("esm-meter", self.meter),
            ("esm-aggregate", self.usage_stream),
            ("esm-rate", self.aggregates_stream),
        ):
            thread = threading.Thread(target=mapping.run, args=(self.stop,), name=name, daemon=True)
            thread.start()
            self.threads.append(thread)
        if not self.meter.started.wait(30) or self.meter.failure is not None:
            raise LocalServerError(f"the Kafka event source mapping did not start: {self.meter.failure}")

    def _child(self, server: TansuBroker | MotoServer) -> str:
        server.start()
        self.children.append(server.child)
        return server.bootstrap if isinstance(server, TansuBroker) else server.endpoint

    def _stop_threads(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _release_clients(self) -> None:
        self.runtime.shutdown()
        if hasattr(self, "feed"):
            del self.feed
        gc.collect()

    def _stop_children(self) -> None:
        for child in reversed(self.children):
            child.stop()

    # driving ------------------------------------------------------------------------------------

    def close_periods(self, now: str) -> list[str]:
        closed: list[str] = self.runtime.invoke(CLOSE.job, {"now": now}, CLOSE.timeout_seconds)["closed"]
        return closed

    def drain(self, tick: Callable[[], None]) -> None:
        """Until every acknowledged record went through meter, and both streams are empty."""
        ends = dict(self.feed.ends)
        self._wait(lambda: all(self.meter.positions.get(p, 0) >= end for p, end in ends.items()), tick)
        for mapping in (self.usage_stream, self.aggregates_stream):
            mapping.draining.set()
            seen = mapping.idle_polls  # a poll in flight may predate the upstream's last write
            self._wait(lambda mapping=mapping, seen=seen: mapping.idle_polls >= seen + 2, tick)  # type: ignore[misc]
            mapping.draining.clear()

    def lag(self) -> dict[int, int]:
        return {
            p: end - self.meter.positions.get(p, self.feed.firsts.get(p, end))
            for p, end in sorted(self.feed.ends.items())
        }

    def _wait(self, done: Callable[[], bool], tick: Callable[[], None]) -> None:
        progress, moved = self._progress(), time.monotonic()
        while not done():
            for mapping in (self.meter, self.usage_stream, self.aggregates_stream):
                if mapping.failure is not None:
                    raise PipelineStalledError(f"an event source mapping failed: {mapping.failure!r}")
            now = self._progress()
            if now != progress:
                progress, moved = now, time.monotonic()
            elif time.monotonic() - moved > STALL_SECONDS:
                raise PipelineStalledError(f"no progress for {STALL_SECONDS:.0f}s: see {self.options.log}")
            tick()
            time.sleep(0.1)
        tick()

    def _progress(self) -> tuple[int, ...]:
        return (
            self.meter.delivered,
            self.usage_stream.delivered,
            self.aggregates_stream.delivered,
            self.usage_stream.idle_polls,
            self.aggregates_stream.idle_polls,
        )


def cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU time of a running process (Linux), None where it cannot be read."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory of this process, and of the largest child process that has ended."""
    scale = 1024  # ru_maxrss is in KiB on Linux
    return {
        "demo process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale,
        "largest server": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / scale,
    }


def _clock_ticks() -> int:
    import os

    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        return 100


_CLOCK_TICKS = _clock_ticks()
