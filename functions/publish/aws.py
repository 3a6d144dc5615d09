"""publish on AWS Lambda: an EventBridge Scheduler schedule puts the cell's new partials into the
billing home's bucket as statements, and each period's final marker once its grace has passed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from meterline.adapters.aws_lambda import AwsSettings, PublishSchedule
from meterline.bootstrap import Wired

logger = Logger(service="meterline-publish")
metrics = Metrics(namespace="meterline", service="publish")
jobs = Wired(lambda: AwsSettings.from_env(os.environ, Path(__file__).parent))
trigger = PublishSchedule(logger, metrics)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return trigger.process(jobs())
