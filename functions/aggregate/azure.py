"""aggregate on Azure Functions: usage.events again, in its own consumer group, joined with what
meter wrote to the usage ledger (Azure Tables has no change feed to trigger on)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import azure.functions as func

from meterline.adapters.azure_functions import HUB_TRIGGERS, AzureSettings, aggregate_batch
from meterline.bootstrap import Wired

logger = logging.getLogger("meterline.aggregate")
blueprint = func.Blueprint()
jobs = Wired(lambda: AzureSettings.from_env(os.environ, Path(__file__).parent))


@blueprint.function_name("aggregate")
@blueprint.retry(strategy="fixed_delay", max_retry_count="-1", delay_interval="00:00:10")
@blueprint.event_hub_message_trigger(
    arg_name="events",
    event_hub_name=HUB_TRIGGERS["aggregate"].hub,
    connection="METERLINE_EVENTHUB",
    cardinality=func.Cardinality.MANY,
    consumer_group=HUB_TRIGGERS["aggregate"].consumer_group,
)
def handler(events: list[func.EventHubEvent]) -> None:
    aggregate_batch(events, jobs(), logger)
