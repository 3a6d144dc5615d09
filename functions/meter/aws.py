"""meter on AWS Lambda: MSK event source mapping on usage.events (``aws:kafka`` events)."""

from __future__ import annotations

import os
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.kafka_event import KafkaEventRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from meterline.adapters.aws_lambda import Settings, Wiring
from meterline.pipeline.meter import DeliveredRecord, Meter, Outcome
from meterline.records import Delivery

logger = Logger(service="meterline-meter")
metrics = Metrics(namespace="meterline", service="meter")
tracer = Tracer(service="meterline-meter")
processor = BatchProcessor(event_type=EventType.Kafka, raise_on_entire_batch_failure=False)


@cache
def meter() -> Meter:
    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    return Meter(wiring.catalog, wiring.store, wiring.publisher)


class PartitionStalledError(Exception):
    """An earlier record of this partition failed: keep the partition's order, retry from there."""


stalled: set[tuple[str, int]] = set()
outcomes: Counter[str] = Counter()
"""This invocation's outcomes, published as metrics once per batch rather than per record."""


def meter_record(record: KafkaEventRecord) -> None:
    delivery = Delivery(record.topic, record.partition, record.offset)
    partition = (record.topic, record.partition)
    if partition in stalled:
        raise PartitionStalledError(str(delivery))
    try:
        outcome, reason = meter().meter_one(
            DeliveredRecord(delivery, record.decoded_key, record.decoded_value)
        )
    except Exception:
        stalled.add(partition)
        raise
    outcomes[f"events_{outcome}"] += 1
    if outcome is Outcome.REJECTED:
        outcomes[f"rejected_{reason}"] += 1
        logger.info("event rejected", extra={"delivery": str(delivery), "reason": reason})


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # A store or publish failure raises inside meter_record: that record (and the rest of its
    # partition after it) is reported back and delivered again; outcomes are idempotent.
    stalled.clear()
    outcomes.clear()
    response = process_partial_response(
        event=event, record_handler=meter_record, processor=processor, context=context
    )
    for name, count in sorted(outcomes.items()):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
    return response
