"""rate on AWS Lambda: in the billing home, a schedule re-rates every open period's tenants (no
stream crosses from the cells); in a single-cell pipeline (the local runtime), the aggregates
ledger's DynamoDB stream feeds it the new partial states."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from meterline.adapters.aws_lambda import AggregatesStream, AwsSettings, RateSchedule
from meterline.bootstrap import Wired

logger = Logger(service="meterline-rate")
metrics = Metrics(namespace="meterline", service="rate")
jobs = Wired(lambda: AwsSettings.from_env(os.environ, Path(__file__).parent))
stream, schedule = AggregatesStream(logger, metrics), RateSchedule(logger, metrics)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return stream.process(event, jobs()) if "Records" in event else schedule.process(jobs())
