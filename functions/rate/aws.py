"""rate on AWS Lambda: DynamoDB stream of the aggregates ledger (new partial states)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from meterline.adapters.aws_lambda import AwsSettings, stream_image
from meterline.bootstrap import Wired

logger = Logger(service="meterline-rate")
metrics = Metrics(namespace="meterline", service="rate")
tracer = Tracer(service="meterline-rate")
jobs = Wired(lambda: AwsSettings.from_env(os.environ, Path(__file__).parent))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    partials = [
        stream_image(record["dynamodb"]["NewImage"])
        for record in event.get("Records", [])
        if record.get("eventName") == "INSERT"
        and record["dynamodb"]["NewImage"].get("sk", {}).get("S", "").startswith("partial|")
    ]
    cell = jobs()
    alerts = cell.charges.run(partials, cell.clock())
    metrics.add_metric(name="spend_alerts_published", unit=MetricUnit.Count, value=alerts)
    return {"batchItemFailures": []}
