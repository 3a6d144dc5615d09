"""close on AWS Lambda: an EventBridge Scheduler schedule closes every period past its grace."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from meterline.adapters.aws_lambda import AwsSettings, Schedule
from meterline.bootstrap import Wired

logger = Logger(service="meterline-close")
metrics = Metrics(namespace="meterline", service="close")
jobs = Wired(lambda: AwsSettings.from_env(os.environ, Path(__file__).parent))
trigger = Schedule(logger, metrics)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return trigger.process(jobs())
