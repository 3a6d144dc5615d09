"""aggregate on AWS Lambda: DynamoDB stream of the usage ledger (INSERT records)."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from meterline.adapters.aws_lambda import Settings, Wiring, stream_records
from meterline.pipeline.aggregate import Aggregator

logger = Logger(service="meterline-aggregate")
metrics = Metrics(namespace="meterline", service="aggregate")
tracer = Tracer(service="meterline-aggregate")


@cache
def aggregator() -> Aggregator:
    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    return Aggregator(wiring.catalog, wiring.store)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # All or nothing: on a store error the whole batch is retried from its first record, and the
    # markers committed with each billing period's partial make that safe. A record that cannot
    # be applied is set aside (and counted for an alarm) rather than failing the shard for good.
    job = aggregator()
    before = job.dead_lettered
    applied = job.run(stream_records(event, job))
    metrics.add_metric(name="usage_aggregated", unit=MetricUnit.Count, value=applied)
    if job.dead_lettered > before:
        metrics.add_metric(name="dead_lettered", unit=MetricUnit.Count, value=job.dead_lettered - before)
    return {"batchItemFailures": []}
