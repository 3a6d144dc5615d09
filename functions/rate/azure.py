"""rate on Azure Functions: a timer re-rates the tenants with usage not rolled up yet in every open period."""

from __future__ import annotations

import os
from pathlib import Path

import azure.functions as func

from meterline.adapters.azure_functions import TIMER_SCHEDULES, AzureSettings
from meterline.bootstrap import Wired

blueprint = func.Blueprint()
SCHEDULE = TIMER_SCHEDULES["rate"]
jobs = Wired(lambda: AzureSettings.from_env(os.environ, Path(__file__).parent))


@blueprint.function_name("rate")
@blueprint.timer_trigger(arg_name="timer", schedule=SCHEDULE, use_monitor=True)
def handler(timer: func.TimerRequest) -> None:
    # Azure Tables cannot announce new partials; re-rating is idempotent and each spend alert is a
    # conditional create, so rating everything again loses nothing and announces nothing twice.
    cell = jobs()
    cell.charges.run_open(cell.clock())
