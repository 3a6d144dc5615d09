"""meter on Cloud Run functions: Eventarc brings one Pub/Sub message, one Kafka record, per call."""

from __future__ import annotations

import logging
import os
from functools import cache
from pathlib import Path

import functions_framework
from cloudevents.http import CloudEvent

from meterline.adapters.gcp_functions import Settings, Wiring, pubsub_record
from meterline.markets import LOCAL, Market
from meterline.pipeline.meter import DeliveredRecord, Meter, Outcome

logger = logging.getLogger("meterline.meter")


@cache
def meter() -> Meter:
    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    # the cell's market goes into the measurements of meters grouped by $cloud or $region (SPEC §8)
    market = Market.of_cell(os.environ.get("METERLINE_CELL_NAME", LOCAL.cloud))
    return Meter(wiring.catalog, wiring.store, wiring.publisher, market=market)


@functions_framework.cloud_event
def handler(cloud_event: CloudEvent) -> None:
    # Returning acks the message; raising has Pub/Sub deliver it again. A reject is an outcome
    # (ledgered and dead-lettered) and returns; a store or publish failure raises, until the
    # record has had its attempts and is dead-lettered (an outage raises for as long as it lasts).
    record = pubsub_record(cloud_event["source"], cloud_event.data)
    job = meter()
    outcome, reason, attempts = job.settle(DeliveredRecord(record.delivery, record.key, record.value))
    job.publisher.flush()
    if attempts:
        logger.error(
            "record dead-lettered after failing every attempt",
            extra={"delivery": str(record.delivery), "attempts": attempts, "metric": "dead_lettered"},
        )
    elif outcome is Outcome.REJECTED:
        logger.info("event rejected", extra={"delivery": str(record.delivery), "reason": reason})
