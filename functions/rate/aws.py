"""rate on AWS Lambda: DynamoDB stream of the aggregates ledger (new partial states)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from meterline.adapters.aws_lambda import AggregatesStream, AwsSettings
from meterline.bootstrap import Wired

logger = Logger(service="meterline-rate")
metrics = Metrics(namespace="meterline", service="rate")
jobs = Wired(lambda: AwsSettings.from_env(os.environ, Path(__file__).parent))
trigger = AggregatesStream(logger, metrics)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return trigger.process(event, jobs())
