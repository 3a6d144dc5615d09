"""aggregate on Azure Functions: usage.events again, in its own consumer group, joined with what
meter wrote to the usage ledger (Azure Tables has no change feed to trigger on)."""

from __future__ import annotations

import logging
import os
from functools import cache
from pathlib import Path

import azure.functions as func

from meterline.adapters.azure_functions import (
    HUB_TRIGGERS,
    Settings,
    UnreadableUsageError,
    Wiring,
    accepted_usage,
    hub_records,
)
from meterline.metering import Metering
from meterline.pipeline.aggregate import Aggregator, StreamRecord

logger = logging.getLogger("meterline.aggregate")
blueprint = func.Blueprint()
TRIGGER = HUB_TRIGGERS["aggregate"]


@cache
def aggregator() -> Aggregator:
    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    return Aggregator(wiring.catalog, wiring.store)


@cache
def metering() -> Metering:
    return Metering(aggregator().catalog.meters_by_type)


@blueprint.function_name("aggregate")
@blueprint.retry(strategy="fixed_delay", max_retry_count="-1", delay_interval="00:00:10")
@blueprint.event_hub_message_trigger(
    arg_name="events",
    event_hub_name=TRIGGER.hub,
    connection="METERLINE_EVENTHUB",
    cardinality=func.Cardinality.MANY,
    consumer_group=TRIGGER.consumer_group,
)
def handler(events: list[func.EventHubEvent]) -> None:
    # All or nothing, as on AWS: the partials and the batch marker commit in one transaction, and a
    # rerun of the batch starts at the same record, finds the marker and applies nothing twice.
    # A usage item that cannot be read back is set aside, not left to fail every rerun.
    job = aggregator()
    records = []
    for record in hub_records(TRIGGER.hub, events):
        try:
            usage = accepted_usage(job.store, metering(), record)  # raises while meter lags behind
        except UnreadableUsageError as error:
            job.set_aside(record.sequence, f"unreadable usage item: {error}", None, str(record.delivery))
            logger.error(
                "record dead-lettered: its usage item cannot be read",
                extra={"delivery": str(record.delivery), "metric": "dead_lettered"},
            )
            continue
        if usage is not None:
            records.append(StreamRecord(record.sequence, usage))
    before = job.dead_lettered
    job.run(records)
    if job.dead_lettered > before:
        logger.error(
            "records set aside: they cannot be aggregated",
            extra={"count": job.dead_lettered - before, "metric": "dead_lettered"},
        )
