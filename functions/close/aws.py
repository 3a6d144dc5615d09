"""close on AWS Lambda: an EventBridge Scheduler schedule closes every period past its grace."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from meterline.adapters.aws_lambda import Settings, Wiring
from meterline.pipeline.close import Closer

logger = Logger(service="meterline-close")
metrics = Metrics(namespace="meterline", service="close")
tracer = Tracer(service="meterline-close")


@cache
def closer() -> Closer:
    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    return Closer(wiring.catalog, wiring.store, wiring.publisher, wiring.settings.grace)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The schedule may pass {"now": "..."} to close as of another instant (a replay); else now.
    now = datetime.fromisoformat(event["now"]) if event.get("now") else datetime.now(UTC)
    closed = [str(period) for period in closer().run(now)]
    metrics.add_metric(name="periods_closed", unit=MetricUnit.Count, value=len(closed))
    logger.info("periods closed", extra={"periods": closed})
    return {"closed": closed}
