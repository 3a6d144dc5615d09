"""rate on Azure Functions: a timer re-rates the tenants with usage not rolled up yet in every open period."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import azure.functions as func

from meterline.adapters.azure_functions import Settings, Wiring
from meterline.pipeline.rate import RunningCharges

blueprint = func.Blueprint()
SCHEDULE = "0 */5 * * * *"
"""Every five minutes: how far running charges and spend alerts may lag behind usage."""


@cache
def running_charges() -> RunningCharges:
    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    return RunningCharges(wiring.catalog, wiring.store, wiring.publisher)


@blueprint.function_name("rate")
@blueprint.timer_trigger(arg_name="timer", schedule=SCHEDULE, use_monitor=True)
def handler(timer: func.TimerRequest) -> None:
    # Azure Tables cannot announce new partials; re-rating is idempotent and each spend alert is a
    # conditional create, so rating everything again loses nothing and announces nothing twice.
    running_charges().run_open()
