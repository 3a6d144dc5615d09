"""One billing cell on this machine: servers, topics and tables, the functions, and the event
source mappings that drive them — started together, stopped together (also on Ctrl-C)."""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from meterline.adapters.aws_lambda import AwsSettings
from meterline.adapters.dynamodb import DynamoStore, create_tables, physical_name
from meterline.bootstrap import bootstrap
from meterline.settings import KafkaAuth
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

from .broker import create_topics
from .esm import KafkaEventSourceMapping
from .feed import UsageFeed
from .lifecycle import CellLifecycle
from .lifecycle import CellOptions as CellOptions
from .lifecycle import PipelineStalledError as PipelineStalledError
from .motoserver import MOTO_SERVICES, MotoServer, moto_client, reachable
from .process import LocalServerError
from .runtime import Runtime
from .streams import StreamEventSourceMapping


class LocalCell(CellLifecycle):
    ledgers, ledger_names = "DynamoDB (moto)", "tables"
    labels = ("metered (Kafka ESM → meter)", "aggregated (usage stream)")
    failed = "an event source mapping failed: {!r}"

    runtime: Runtime
    meter: KafkaEventSourceMapping
    usage_stream: StreamEventSourceMapping
    aggregates_stream: StreamEventSourceMapping

    def _start(self) -> None:
        options = self.options
        log = self._open_log()
        self.bootstrap = self._kafka()
        if not options.aws_endpoint:
            self.endpoint = self._started(MotoServer(options.log.with_suffix(".moto.log"))).endpoint
        elif reachable(options.aws_endpoint):
            self.endpoint = options.aws_endpoint
        else:
            raise LocalServerError(f"--aws-endpoint {options.aws_endpoint}: no moto server answers there")
        create_topics(self.bootstrap, TOPICS)
        self.settings = AwsSettings(
            table_prefix=self.prefix,
            catalog=options.catalog.resolve(),
            kafka_bootstrap=self.bootstrap,
            kafka_auth=KafkaAuth.NONE,
            region=options.region,
            dynamodb_endpoint=self.endpoint,
        )
        dynamodb, streams = (moto_client(service, self.endpoint, options.region) for service in MOTO_SERVICES)
        create_tables(dynamodb, self.prefix)
        self.store = DynamoStore(dynamodb, self.prefix)
        # Powertools logs and EMF metrics print to stdout: they go to the log, the terminal shows the demo
        self._exit.enter_context(contextlib.redirect_stdout(log))
        self.runtime = Runtime(
            {f.job: f.memory_mb for f in (METER, AGGREGATE, RATE, CLOSE)},
            lambda: bootstrap(self.settings, store=self.store, clock=self.clock),
        )
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
        self._spawn(self.meter.run, name="esm-meter")
        self._spawn(self.usage_stream.run, name="esm-aggregate")
        self._spawn(self.aggregates_stream.run, name="esm-rate")
        self._await_start(self.meter, "the Kafka event source mapping")

    # driving ------------------------------------------------------------------------------------

    def close_periods(self, now: str) -> list[str]:
        """The schedule firing at ``now`` (the cell's clock set to it): the periods it closed."""
        self.clock.set(datetime.fromisoformat(now))
        closed: list[str] = self.runtime.invoke(CLOSE.job, {}, CLOSE.timeout_seconds)["closed"]
        return closed

    def drain(self, tick: Callable[[], None]) -> None:
        """Until every acknowledged record went through meter, and both streams are empty."""
        self._wait_past(self.meter, dict(self.feed.ends), tick)
        for mapping in (self.usage_stream, self.aggregates_stream):
            mapping.draining.set()
            seen = mapping.idle_polls  # a poll in flight may predate the upstream's last write
            self._wait(lambda mapping=mapping, seen=seen: mapping.idle_polls >= seen + 2, tick)  # type: ignore[misc]
            mapping.draining.clear()

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
