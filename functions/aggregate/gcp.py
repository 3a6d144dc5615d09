"""aggregate on Cloud Run functions: Cloud Scheduler calls it over HTTP every minute, and it drains
``usage.events`` itself in its own consumer group, a batch per partition and one aggregator run per
batch (see meterline.adapters.kafka_drain for why that is exactly-once in effect).

HTTP rather than a Pub/Sub trigger: the schedule needs no topic or subscription, a tick refused
while the one instance is still busy is simply dropped (the next minute goes on from the committed
offsets, where a Pub/Sub message would be redelivered late), and the answer says what was drained.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from pathlib import Path
from typing import Any

import flask
import functions_framework

from meterline.adapters.gcp_functions import Settings, Wiring
from meterline.adapters.kafka_drain import KafkaDrain
from meterline.metering import Metering
from meterline.pipeline.aggregate import Aggregator
from meterline.topology import AGGREGATE, USAGE_EVENTS

logger = logging.getLogger("meterline.aggregate")


@cache
def wiring() -> Wiring:
    return Wiring(Settings.from_env(os.environ, Path(__file__).parent))


@cache
def aggregator() -> Aggregator:
    return Aggregator(wiring().catalog, wiring().store)


@cache
def metering() -> Metering:
    return Metering(wiring().catalog.meters_by_type)


@functions_framework.http
def handler(request: flask.Request) -> tuple[dict[str, Any], int]:
    # The request carries nothing: the committed offsets say where to go on. A store or broker
    # failure raises (500); what was committed before it stays, the next run goes on from there.
    job = wiring()
    consumer = job.consumer()
    try:
        drain = KafkaDrain(
            consumer,
            USAGE_EVENTS.name,
            aggregator(),
            job.store,
            metering(),
            batch_size=AGGREGATE.batch_size,
            budget_seconds=job.settings.drain_seconds,
        )
        report = drain.run()
    finally:
        consumer.close()
    if report.dead_lettered:
        logger.error(
            "records set aside: they cannot be aggregated",
            extra={"count": report.dead_lettered, "metric": "dead_lettered"},
        )
    return report.to_json(), 200
