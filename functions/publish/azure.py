"""publish on Azure Functions: a timer puts the cell's new partials into the billing home's bucket as
statements, as the home's role for this cell, by the function's managed identity token."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import azure.functions as func

from meterline.adapters.azure_functions import TIMER_SCHEDULES, Settings, Wiring, managed_identity_token
from meterline.adapters.s3 import HomeSettings, home_exchange
from meterline.pipeline.publish import StatementPublisher

logger = logging.getLogger("meterline.publish")
blueprint = func.Blueprint()
SCHEDULE = TIMER_SCHEDULES["publish"]


@cache
def publisher() -> StatementPublisher:
    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    home = HomeSettings.from_env(os.environ)
    token = managed_identity_token(
        home.audience or "api://AzureADTokenExchange", os.environ.get("AZURE_CLIENT_ID")
    )
    return StatementPublisher(wiring.catalog, wiring.store, home_exchange(home, token), home.cell)


def now() -> datetime:
    return datetime.now(UTC)


@blueprint.function_name("publish")
@blueprint.timer_trigger(arg_name="timer", schedule=SCHEDULE, use_monitor=True)
def handler(timer: func.TimerRequest) -> None:
    # A store or bucket failure raises; the next tick goes on, and what was put stands.
    job = publisher()
    moment = now()
    published = job.catch_up(moment)
    finals = job.finalize(moment)
    logger.info(
        "statements published",
        extra={"statements": len(published), "final": [str(marker.period) for marker in finals]},
    )
