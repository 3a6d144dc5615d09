"""meter on Azure Functions: Event Hubs trigger on usage.events, a batch from one partition per call."""

from __future__ import annotations

import logging
import os
from functools import cache
from pathlib import Path

import azure.functions as func

from meterline.adapters.azure_functions import HUB_TRIGGERS, Settings, Wiring, hub_records
from meterline.markets import LOCAL, Market
from meterline.pipeline.meter import DeliveredRecord, Meter, Outcome

logger = logging.getLogger("meterline.meter")
blueprint = func.Blueprint()
TRIGGER = HUB_TRIGGERS["meter"]


@cache
def meter() -> Meter:
    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    # the cell's market goes into the measurements of meters grouped by $cloud or $region (SPEC §8)
    market = Market.of_cell(os.environ.get("METERLINE_CELL_NAME", LOCAL.cloud))
    return Meter(wiring.catalog, wiring.store, wiring.publisher, market=market)


@blueprint.function_name("meter")
@blueprint.retry(strategy="fixed_delay", max_retry_count="-1", delay_interval="00:00:10")
@blueprint.event_hub_message_trigger(
    arg_name="events",
    event_hub_name=TRIGGER.hub,
    connection="METERLINE_EVENTHUB",
    cardinality=func.Cardinality.MANY,
)  # in the hub's $Default consumer group (TRIGGER.consumer_group)
def handler(events: list[func.EventHubEvent]) -> None:
    # No partial batch failures: the first store or publish failure raises, the partition stops
    # there and the whole batch runs again; records already metered reach the same outcome. A
    # record that keeps failing (not an outage) is dead-lettered once it has had its attempts.
    job = meter()
    for record in hub_records(TRIGGER.hub, events):
        delivered = DeliveredRecord(record.delivery, record.key, record.value)
        outcome, reason, attempts = job.settle(delivered)
        if attempts:
            logger.error(
                "record dead-lettered after failing every attempt",
                extra={"delivery": str(record.delivery), "attempts": attempts, "metric": "dead_lettered"},
            )
        elif outcome is Outcome.REJECTED:
            logger.info("event rejected", extra={"delivery": str(record.delivery), "reason": reason})
    job.publisher.flush()
