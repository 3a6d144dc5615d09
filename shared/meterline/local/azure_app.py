"""The Azure Function App as the Functions host indexes it: ``functions/function_app.py`` loaded,
each registered function with its trigger binding, its retry policy and its user function.

The local runtime drives the functions from this index, and the infra tests hold the cell's consumer
groups and receive rights against it, so the triggers are read from the code in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from meterline.bootstrap import Wired

from .runtime import FUNCTIONS_ROOT, load_function

EVENT_HUB_TRIGGER = "eventHubTrigger"
TIMER_TRIGGER = "timerTrigger"


class FunctionAppError(RuntimeError):
    """The function app could not be loaded, or holds a function the local host cannot drive."""


@dataclass(frozen=True)
class RetryPolicy:
    """The ``@retry`` of a function: the host runs a failed invocation again, up to ``max_retries``
    times (-1: without end), before it moves on (checkpointing past the batch)."""

    max_retries: int
    delay: timedelta


@dataclass(frozen=True)
class IndexedFunction:
    name: str
    trigger: Mapping[str, Any]
    """The trigger binding as the host reads it (function.json names: ``eventHubName``, ``schedule``)."""
    retry: RetryPolicy | None
    user_function: Callable[..., Any]

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    @property
    def jobs(self) -> Wired:
        """The jobs of the function's blueprint module (its ``jobs``)."""
        wired: Wired = self.user_function.__globals__["jobs"]
        return wired


def load_function_app(root: Path = FUNCTIONS_ROOT) -> dict[str, IndexedFunction]:
    """Every function of ``<root>/function_app.py``, by name."""
    try:
        module = load_function(
            root / "function_app.py", "meterline_local_function_app", "the Azure function app"
        )
    except FileNotFoundError as missing:
        raise FunctionAppError(str(missing)) from None
    decorators = logging.getLogger()
    level = decorators.level
    decorators.setLevel(logging.ERROR)  # the SDK warns that auth levels apply to HTTP triggers only
    try:
        functions = module.app.get_functions()
    finally:
        decorators.setLevel(level)
    return {function.get_function_name(): _indexed(function) for function in functions}


def _indexed(function: Any) -> IndexedFunction:
    trigger = {name: _plain(value) for name, value in function.get_trigger().get_dict_repr().items()}
    return IndexedFunction(
        function.get_function_name(),
        trigger,
        _retry(function.get_settings_dict("retry_policy")),
        function.get_user_function(),
    )


def _plain(value: Any) -> Any:
    """Enum members of the decorators (Cardinality.MANY) as the host reads them: their values."""
    return getattr(value, "value", value)


def _retry(setting: Mapping[str, Any] | None) -> RetryPolicy | None:
    if not setting:
        return None
    if setting.get("strategy") != "fixed_delay":
        raise FunctionAppError(
            f"retry strategy {setting.get('strategy')!r}: the local host runs fixed_delay only"
        )
    hours, minutes, seconds = (int(part) for part in str(setting["delay_interval"]).split(":"))
    return RetryPolicy(
        int(setting["max_retry_count"]), timedelta(hours=hours, minutes=minutes, seconds=seconds)
    )
