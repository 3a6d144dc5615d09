"""close on Azure Functions: an hourly timer closes every period past its grace."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import azure.functions as func

from meterline.adapters.azure_functions import TIMER_SCHEDULES, Settings, Wiring
from meterline.pipeline.close import Closer

logger = logging.getLogger("meterline.close")
blueprint = func.Blueprint()
SCHEDULE = TIMER_SCHEDULES["close"]


@cache
def closer() -> Closer:
    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    return Closer(wiring.catalog, wiring.store, wiring.publisher, wiring.settings.grace)


def now() -> datetime:
    return datetime.now(UTC)


@blueprint.function_name("close")
@blueprint.timer_trigger(arg_name="timer", schedule=SCHEDULE, use_monitor=True)
def handler(timer: func.TimerRequest) -> None:
    closed = closer().run(now())
    logger.info("periods closed", extra={"periods": [str(period) for period in closed]})
