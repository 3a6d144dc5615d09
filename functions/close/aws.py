"""close on AWS Lambda: an EventBridge Scheduler schedule closes every period past its grace."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from meterline.adapters.aws_lambda import AwsSettings
from meterline.bootstrap import Wired

logger = Logger(service="meterline-close")
metrics = Metrics(namespace="meterline", service="close")
tracer = Tracer(service="meterline-close")
jobs = Wired(lambda: AwsSettings.from_env(os.environ, Path(__file__).parent))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # As of the clock, never of the event: a payload cannot close a period before its time.
    cell = jobs()
    closed = [str(period) for period in cell.closer.run(cell.clock())]
    metrics.add_metric(name="periods_closed", unit=MetricUnit.Count, value=len(closed))
    logger.info("periods closed", extra={"periods": closed})
    return {"closed": closed}
