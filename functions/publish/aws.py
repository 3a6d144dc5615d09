"""publish on AWS Lambda: an EventBridge Scheduler schedule puts the cell's new partials into the
billing home's bucket as statements, and each period's final marker once its grace has passed."""

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
from meterline.adapters.s3 import HomeSettings, home_exchange
from meterline.pipeline.publish import StatementPublisher

logger = Logger(service="meterline-publish")
metrics = Metrics(namespace="meterline", service="publish")
tracer = Tracer(service="meterline-publish")


@cache
def publisher() -> StatementPublisher:
    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    home = HomeSettings.from_env(os.environ)
    return StatementPublisher(wiring.catalog, wiring.store, home_exchange(home), home.cell)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The schedule may pass {"now": "..."} to publish as of another instant (a replay); else now.
    # A store or bucket failure raises: the schedule retries, and what was put stands (a no-op again).
    now = datetime.fromisoformat(event["now"]) if event.get("now") else datetime.now(UTC)
    job = publisher()
    published = job.catch_up(now)
    finals = job.finalize(now)
    metrics.add_metric(name="statements_published", unit=MetricUnit.Count, value=len(published))
    metrics.add_metric(name="periods_final", unit=MetricUnit.Count, value=len(finals))
    logger.info(
        "statements published", extra={"statements": len(published), "final": [str(f.period) for f in finals]}
    )
    return {"published": len(published), "final": [str(marker.period) for marker in finals]}
