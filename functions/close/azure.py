"""close on Azure Functions: an hourly timer closes every period past its grace."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import azure.functions as func

from meterline.adapters.azure_functions import TIMER_SCHEDULES, AzureSettings
from meterline.bootstrap import Wired

logger = logging.getLogger("meterline.close")
blueprint = func.Blueprint()
SCHEDULE = TIMER_SCHEDULES["close"]
jobs = Wired(lambda: AzureSettings.from_env(os.environ, Path(__file__).parent))


@blueprint.function_name("close")
@blueprint.timer_trigger(arg_name="timer", schedule=SCHEDULE, use_monitor=True)
def handler(timer: func.TimerRequest) -> None:
    cell = jobs()
    closed = cell.closer.run(cell.clock())
    logger.info("periods closed", extra={"periods": [str(period) for period in closed]})
