"""Azure Functions, locally: the real function app (``functions/function_app.py`` and the
``functions/<job>/azure.py`` blueprints it registers), each function handed the jobs the
composition root builds from the cell's settings (``bootstrap``), called with what its trigger
hands it — a batch of ``azure.functions.EventHubEvent`` from one partition, or a ``TimerRequest``.

As in the Python worker, the functions run on threads of one process, side by side; each keeps
its clients in module globals, built at its first invocation.

Two departures from Azure: Event Hubs' Kafka endpoint only speaks SASL over TLS and the local broker
neither, so the functions publish with ``kafka_auth`` none; and the timers fire when the driver
says, at the driver's clock, so that a month closes in seconds.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from meterline.bootstrap import Jobs

from .azure_app import EVENT_HUB_TRIGGER, TIMER_TRIGGER, FunctionAppError, IndexedFunction, load_function_app
from .esm import KafkaRecord
from .runtime import Invocations, counted


class AzureRuntime:
    """The function app of one cell. ``call`` raises what the function raised."""

    def __init__(self, wire: Callable[[], Jobs]) -> None:
        """``wire()`` builds the jobs of one function."""
        self.functions = load_function_app()
        for function in self.functions.values():
            if function.trigger_type not in (EVENT_HUB_TRIGGER, TIMER_TRIGGER):
                raise FunctionAppError(
                    f"function {function.name}: no local trigger for {function.trigger_type}"
                )
            function.jobs.use(wire())
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
            function.jobs.release()
        self.functions.clear()
        gc.collect()


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
