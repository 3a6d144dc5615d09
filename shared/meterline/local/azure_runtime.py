"""Azure Functions, locally: the real function app (``functions/function_app.py`` and the
``functions/<job>/azure.py`` blueprints it registers), its app settings in the environment, its
functions called with what their triggers hand them — a batch of ``azure.functions.EventHubEvent``
from one partition, or a ``TimerRequest``.

As in the Python worker, the functions run on threads of one process, side by side; each keeps
its clients in module globals, built at its first invocation.

Two departures from Azure: Event Hubs' Kafka endpoint only speaks SASL over TLS and the local broker
neither, so the functions publish with METERLINE_KAFKA_AUTH=none; and the timers fire when the
driver says, close at the driver's clock (``now`` of its module), so that a month closes in seconds.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .azure_app import EVENT_HUB_TRIGGER, TIMER_TRIGGER, FunctionAppError, IndexedFunction, load_function_app
from .esm import KafkaRecord
from .runtime import Environment, Invocations, clear_caches, counted


@dataclass(frozen=True)
class AzureSettings:
    """What the functions read from their app settings (adapters/azure_functions.Settings.from_env)."""

    catalog: Path
    table_prefix: str
    kafka_bootstrap: str
    tables_connection_string: str

    def environment(self) -> dict[str, str]:
        return {
            "METERLINE_TABLE_PREFIX": self.table_prefix,
            "METERLINE_CATALOG": str(self.catalog.resolve()),
            "METERLINE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "METERLINE_KAFKA_AUTH": "none",
            "METERLINE_TABLES_CONNECTION_STRING": self.tables_connection_string,
        }


class AzureRuntime:
    """The function app of one cell. ``call`` raises what the function raised."""

    def __init__(self, settings: AzureSettings, clock: Callable[[], datetime]) -> None:
        self._environment = Environment(settings.environment())
        try:
            self.functions = load_function_app()
            for function in self.functions.values():
                if function.trigger_type not in (EVENT_HUB_TRIGGER, TIMER_TRIGGER):
                    raise FunctionAppError(
                        f"function {function.name}: no local trigger for {function.trigger_type}"
                    )
        except BaseException:
            self._environment.restore()
            raise
        close = self.functions.get("close")
        if close is not None and "now" in close.module_globals:
            close.module_globals["now"] = clock
        self.stats: dict[str, Invocations] = {name: Invocations() for name in self.functions}
        self._lock = threading.Lock()

    def of_trigger(self, trigger_type: str) -> list[IndexedFunction]:
        return [function for function in self.functions.values() if function.trigger_type == trigger_type]

    def call(self, name: str, argument: Any) -> None:
        with self._counted(name):
            self.functions[name].user_function(argument)

    def _counted(self, name: str) -> AbstractContextManager[None]:
        return counted(self.stats[name], self._lock)

    def shutdown(self) -> None:
        """Let go of the functions' clients (the Kafka producers flush and close now), while the
        servers still run."""
        for function in self.functions.values():
            clear_caches(function.module_globals)
        self.functions.clear()
        gc.collect()
        self._environment.restore()


# What the triggers hand the functions --------------------------------------------------------------


def hub_batch(records: Sequence[KafkaRecord], consumer_group: str) -> list[Any]:
    """One partition's records as the worker hands a ``cardinality=many`` Event Hubs trigger: each
    an EventHubEvent carrying the batch's trigger metadata (PartitionContext among it)."""
    import azure.functions as func
    from azure.functions.meta import Datum

    partition = str(records[0].partition)
    metadata = {
        "PartitionContext": Datum(
            json.dumps(
                {
                    "EventHubName": records[0].topic,
                    "ConsumerGroup": consumer_group,
                    "PartitionId": partition,
                }
            ),
            "json",
        ),
        "SequenceNumberArray": Datum(json.dumps([record.offset for record in records]), "json"),
    }
    return [
        func.EventHubEvent(
            body=record.value,
            trigger_metadata=metadata,
            enqueued_time=datetime.fromtimestamp(record.timestamp / 1000, UTC)
            if record.timestamp > 0
            else None,
            partition_key=None if record.key is None else record.key.decode("utf-8", "replace"),
            sequence_number=record.offset,
            offset=str(record.offset),
        )
        for record in records
    ]


def timer_request(past_due: bool = False) -> Any:
    from azure.functions.timer import TimerRequest

    return TimerRequest(past_due=past_due)
