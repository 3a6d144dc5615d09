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
from collections.abc import Callable
from datetime import datetime

from meterline.adapters.azure_functions import AzureSettings
from meterline.bootstrap import bootstrap
from meterline.pipeline.ledger import closed_periods
from meterline.settings import KafkaAuth
from meterline.topology import TOPICS, USAGE_EVENTS

from .azure_app import EVENT_HUB_TRIGGER, TIMER_TRIGGER, FunctionAppError
from .azure_runtime import AzureRuntime
from .azure_triggers import EventHubsTrigger, TimerTrigger
from .azurite import AzuriteTables
from .azurite import missing as azurite_missing
from .broker import create_topics
from .feed import UsageFeed
from .lifecycle import CellLifecycle, PipelineStalledError

RATE_EVERY_SECONDS = 3.0
"""rate's five-minute timer, compressed."""


def missing_for_azure() -> str | None:
    """What this machine lacks to run the Azure cell, or None (Azurite may still need installing)."""
    for module, package in (
        ("azure.functions", "azure-functions"),
        ("azure.data.tables", "azure-data-tables"),
    ):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # find_spec imports the parent package, which may be missing too
            found = False
        if not found:
            return f"the Azure functions need {package} (pip install 'meterline[azure]')"
    return azurite_missing()


class AzureCell(CellLifecycle):
    ledgers, ledger_names = "Azure Tables (Azurite)", "tables"
    labels = ("metered (Event Hubs → meter)", "aggregated (Event Hubs → aggregate)")
    failed = "a trigger failed: {}"
    prefix_format = "demo{}"  # Azure table names: letters and digits

    runtime: AzureRuntime
    meter: EventHubsTrigger
    usage_stream: EventHubsTrigger
    aggregates_stream: TimerTrigger

    def _start(self) -> None:
        options = self.options
        log = self._open_log()
        azurite = AzuriteTables(options.log.with_suffix(".azurite.log"))  # installs it when missing
        self.bootstrap = self._kafka()
        self.endpoint = self._started(azurite).endpoint
        create_topics(self.bootstrap, TOPICS)
        from azure.data.tables import TableServiceClient

        from meterline.adapters.tables import TablesStore, create_tables

        service = TableServiceClient.from_connection_string(azurite.connection_string)
        create_tables(service, self.prefix)
        self.store = TablesStore(service, self.prefix)
        self._exit.enter_context(contextlib.redirect_stdout(log))
        settings = AzureSettings(
            table_prefix=self.prefix,
            catalog=options.catalog.resolve(),
            kafka_bootstrap=self.bootstrap,
            kafka_auth=KafkaAuth.NONE,
            tables_connection_string=azurite.connection_string,
        )
        self.runtime = AzureRuntime(lambda: bootstrap(settings, clock=self.clock))
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
            self._spawn(trigger.run, name=trigger.label)
        self._spawn(self.rate.run, RATE_EVERY_SECONDS)
        for trigger in (self.meter, self.usage_stream):
            self._await_start(trigger, f"the Event Hubs trigger {trigger.label}")

    # driving ------------------------------------------------------------------------------------

    def close_periods(self, now: str) -> list[str]:
        """close's timer firing at ``now``: the periods it closed."""
        self.clock.set(datetime.fromisoformat(now))
        before = set(closed_periods(self.store))
        self._fire(self.closer)
        return sorted(str(period) for period in set(closed_periods(self.store)) - before)

    def drain(self, tick: Callable[[], None]) -> None:
        """Until every acknowledged record went through meter and then aggregate; then rate fires."""
        ends = dict(self.feed.ends)
        for trigger in (self.meter, self.usage_stream):
            self._wait_past(trigger, ends, tick)
        self._fire(self.rate)

    @staticmethod
    def _fire(timer: TimerTrigger) -> None:
        try:
            timer.fire()
        except Exception as error:
            raise PipelineStalledError(
                f"the {timer.function.name} timer's function failed: {type(error).__name__}: {error}"
            ) from error

    def _progress(self) -> tuple[int, ...]:
        return (
            self.meter.delivered,
            self.usage_stream.delivered,
            self.meter.retries,
            self.usage_stream.retries,
        )
