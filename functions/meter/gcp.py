"""meter on Cloud Run functions: Eventarc brings one Pub/Sub message, one Kafka record, per call."""

from __future__ import annotations

import logging
import os
from functools import cache
from pathlib import Path

import functions_framework
from cloudevents.http import CloudEvent

from meterline.adapters.gcp_functions import Settings, Wiring, pubsub_record
from meterline.pipeline.meter import DeliveredRecord, Meter, Outcome

logger = logging.getLogger("meterline.meter")


@cache
def meter() -> Meter:
    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    return Meter(wiring.catalog, wiring.store, wiring.publisher)


@functions_framework.cloud_event
def handler(cloud_event: CloudEvent) -> None:
    # Returning acks the message; raising has Pub/Sub deliver it again. A reject is an outcome
    # (ledgered and dead-lettered) and returns; only a store or publish failure raises.
    record = pubsub_record(cloud_event["source"], cloud_event.data)
    job = meter()
    outcome, reason = job.meter_one(DeliveredRecord(record.delivery, record.key, record.value))
    job.publisher.flush()
    if outcome is Outcome.REJECTED:
        logger.info("event rejected", extra={"delivery": str(record.delivery), "reason": reason})
