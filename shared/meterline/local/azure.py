"""One billing cell on this machine, Azure's way: Tansu for Event Hubs' Kafka endpoint (the topology's
topics as hubs), Azurite for Azure Tables, the real function app, and the triggers that drive it —
started together, stopped together (also on Ctrl-C). The driver's side matches LocalCell's, so the
demo runs either.

meter and aggregate both read ``usage.events``, each in its own consumer group: aggregate asks the
usage table what meter made of each record and retries its batch while meter lags behind. rate
fires on its timer every ``RATE_EVERY_SECONDS`` (five minutes on Azure) and once more whenever the
cell is drained; close fires when the driver closes periods, at the driver's clock.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import TextIO

from meterline.topology import AGGREGATES_TABLE, TOPICS, USAGE_EVENTS

from .azure_app import EVENT_HUB_TRIGGER, TIMER_TRIGGER, FunctionAppError
from .azure_runtime import AzureRuntime, AzureSettings
from .azure_triggers import EventHubsTrigger, TimerTrigger
from .azurite import AzuriteTables
from .azurite import missing as azurite_missing
from .broker import TansuBroker, create_topics
from .cell import STALL_SECONDS, CellOptions, PipelineStalledError
from .feed import UsageFeed
from .process import ChildProcess, LocalServerError

RATE_EVERY_SECONDS = 3.0
"""rate's five-minute timer, compressed."""


def missing_for_azure() -> str | None:
    """What this machine lacks to run the Azure cell, or None (Azurite may still need installing)."""
    for module, package in (
        ("azure.functions", "azure-functions"),
        ("azure.data.tables", "azure-data-tables"),
    ):
        if importlib.util.find_spec(module) is None:
            return f"the Azure functions need {package} (pip install 'meterline[azure]')"
    return azurite_missing()


class AzureCell:
    labels = ("metered (Event Hubs → meter)", "aggregated (Event Hubs → aggregate)")

    def __init__(self, options: CellOptions) -> None:
        self.options = options
        self.children: list[ChildProcess] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self._exit = contextlib.ExitStack()
        self.prefix = f"demo{uuid.uuid4().hex[:8]}"  # Azure table names: letters and digits
        self.clock = datetime.now(UTC)

    def __enter__(self) -> AzureCell:
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
            f"Kafka {self.bootstrap} · Azure Tables (Azurite) {self.endpoint}"
            f" · tables {self.prefix}* · log {self.options.log}"
        )

    def _start(self) -> None:
        options = self.options
        log: TextIO = self._exit.enter_context(options.log.open("a", buffering=1))
        self._exit.callback(self._stop_children)
        azurite = AzuriteTables(options.log.with_suffix(".azurite.log"))  # installs it when missing
        if options.kafka:
            self.bootstrap = options.kafka
        else:
            broker = TansuBroker(options.log.with_suffix(".broker.log"))
            self._started(broker.child, broker.start)
            self.bootstrap = broker.bootstrap
        self._started(azurite.child, azurite.start)
        self.endpoint = azurite.endpoint
        create_topics(self.bootstrap, TOPICS)
        from azure.data.tables import TableServiceClient

        from meterline.adapters.tables import TablesStore, create_tables

        service = TableServiceClient.from_connection_string(azurite.connection_string)
        create_tables(service, self.prefix)
        self.store = TablesStore(service, self.prefix)
        self._exit.enter_context(contextlib.redirect_stdout(log))
        settings = AzureSettings(options.catalog, self.prefix, self.bootstrap, azurite.connection_string)
        self.runtime = AzureRuntime(settings, lambda: self.clock)
        self._exit.callback(self._release_clients)
        self.feed = UsageFeed(self.bootstrap, USAGE_EVENTS.name)
        hubs = {
            function.name: EventHubsTrigger(
                self.runtime, function, self.bootstrap, options.on_failure, self.feed.firsts
            )
            for function in self.runtime.of_trigger(EVENT_HUB_TRIGGER)
        }
        timers = {
            function.name: TimerTrigger(self.runtime, function)
            for function in self.runtime.of_trigger(TIMER_TRIGGER)
        }
        try:  # named as the demo names each cell's triggers of meter, aggregate and rate
            self.meter, self.usage_stream = hubs["meter"], hubs["aggregate"]
            self.rate, self.closer = timers["rate"], timers["close"]
        except KeyError as missing:
            raise FunctionAppError(f"the function app registers no {missing} function") from None
        self.aggregates_stream = self.rate
        self._exit.callback(self._stop_threads)
        for trigger in (self.meter, self.usage_stream):
            thread = threading.Thread(target=trigger.run, args=(self.stop,), name=trigger.label, daemon=True)
            thread.start()
            self.threads.append(thread)
        ticking = threading.Thread(target=self.rate.run, args=(self.stop, RATE_EVERY_SECONDS), daemon=True)
        ticking.start()
        self.threads.append(ticking)
        for trigger in (self.meter, self.usage_stream):
            if not trigger.started.wait(30) or trigger.failure is not None:
                raise LocalServerError(
                    f"the Event Hubs trigger {trigger.label} did not start: {trigger.failure}"
                )

    def _started(self, child: ChildProcess, start: Callable[[], None]) -> None:
        self.children.append(child)  # stopped on the way out even if it never became ready
        start()

    def _stop_threads(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _release_clients(self) -> None:
        self.runtime.shutdown()
        if hasattr(self, "feed"):
            del self.feed

    def _stop_children(self) -> None:
        for child in reversed(self.children):
            child.stop()

    # driving ------------------------------------------------------------------------------------

    def close_periods(self, now: str) -> list[str]:
        """close's timer firing at ``now``: the periods it closed."""
        self.clock = datetime.fromisoformat(now)
        before = {str(item["sk"]) for item in self.store.query(AGGREGATES_TABLE.name, "closed")}
        self._fire(self.closer)
        after = {str(item["sk"]) for item in self.store.query(AGGREGATES_TABLE.name, "closed")}
        return sorted(after - before)

    def drain(self, tick: Callable[[], None]) -> None:
        """Until every acknowledged record went through meter and then aggregate; then rate fires."""
        ends = dict(self.feed.ends)
        for trigger in (self.meter, self.usage_stream):
            self._wait(
                lambda trigger=trigger: all(trigger.positions.get(p, 0) >= end for p, end in ends.items()),  # type: ignore[misc]
                tick,
            )
        self._fire(self.rate)

    @staticmethod
    def _fire(timer: TimerTrigger) -> None:
        try:
            timer.fire()
        except Exception as error:
            raise PipelineStalledError(
                f"the {timer.function.name} timer's function failed: {type(error).__name__}: {error}"
            ) from error

    def lag(self) -> dict[int, int]:
        return {
            p: end - self.meter.positions.get(p, self.feed.firsts.get(p, end))
            for p, end in sorted(self.feed.ends.items())
        }

    def _wait(self, done: Callable[[], bool], tick: Callable[[], None]) -> None:
        progress, moved = self._progress(), time.monotonic()
        while not done():
            for trigger in (self.meter, self.usage_stream, self.rate):
                if trigger.failure is not None:
                    raise PipelineStalledError(f"a trigger failed: {trigger.failure}")
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
            self.meter.retries,
            self.usage_stream.retries,
        )
