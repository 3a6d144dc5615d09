"""ingest on AWS Lambda (the billing home): SQS batches of the statements bucket's object-created
notifications; each announced statement is applied once into the home's aggregates ledger."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from meterline.adapters.aws_lambda import AwsSettings, StatementNotifications
from meterline.bootstrap import Wired

logger = Logger(service="meterline-ingest")
metrics = Metrics(namespace="meterline", service="ingest")
jobs = Wired(lambda: AwsSettings.from_env(os.environ, Path(__file__).parent))
trigger = StatementNotifications(logger, metrics)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return trigger.process(event, jobs().ingest)
