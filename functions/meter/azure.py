"""meter on Azure Functions: Event Hubs trigger on usage.events, a batch from one partition per call."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import azure.functions as func

from meterline.adapters.azure_functions import HUB_TRIGGERS, AzureSettings, meter_batch
from meterline.bootstrap import Wired

logger = logging.getLogger("meterline.meter")
blueprint = func.Blueprint()
jobs = Wired(lambda: AzureSettings.from_env(os.environ, Path(__file__).parent))


@blueprint.function_name("meter")
@blueprint.retry(strategy="fixed_delay", max_retry_count="-1", delay_interval="00:00:10")
@blueprint.event_hub_message_trigger(
    arg_name="events",
    event_hub_name=HUB_TRIGGERS["meter"].hub,
    connection="METERLINE_EVENTHUB",
    cardinality=func.Cardinality.MANY,
)  # in the hub's $Default consumer group (HUB_TRIGGERS["meter"].consumer_group)
def handler(events: list[func.EventHubEvent]) -> None:
    meter_batch(events, jobs().meter, logger)
