"""publish on Azure Functions: a timer puts the cell's new partials into the billing home's bucket as
statements, as the home's role for this cell, by the app's managed identity's token."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import azure.functions as func

from meterline.adapters.azure_functions import TIMER_SCHEDULES, AzureSettings
from meterline.bootstrap import Wired

logger = logging.getLogger("meterline.publish")
blueprint = func.Blueprint()
SCHEDULE = TIMER_SCHEDULES["publish"]
jobs = Wired(lambda: AzureSettings.from_env(os.environ, Path(__file__).parent))


@blueprint.function_name("publish")
@blueprint.timer_trigger(arg_name="timer", schedule=SCHEDULE, use_monitor=True)
def handler(timer: func.TimerRequest) -> None:
    cell = jobs()
    logger.info("statements published", extra=cell.publish.run_schedule(cell.clock()).to_json())
