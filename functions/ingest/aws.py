"""ingest on AWS Lambda (the billing home): SQS batches of the statements bucket's object-created
notifications; each announced statement is applied once into the home's aggregates ledger."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from meterline.adapters.aws_lambda import Settings, Wiring, notified_keys
from meterline.adapters.s3 import S3Exchange
from meterline.exchange import ExchangeError
from meterline.pipeline.ingest import Ingest, StatementConflictError
from meterline.ports import StoreError
from meterline.statements import StatementError

logger = Logger(service="meterline-ingest")
metrics = Metrics(namespace="meterline", service="ingest")
tracer = Tracer(service="meterline-ingest")


@cache
def ingest() -> Ingest:
    import boto3

    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    bucket = os.environ.get("METERLINE_STATEMENTS_BUCKET")
    if not bucket:
        raise ExchangeError("the function setting METERLINE_STATEMENTS_BUCKET is missing")
    exchange = S3Exchange(boto3.client("s3", region_name=wiring.settings.region), bucket)
    return Ingest(wiring.catalog, wiring.store, exchange)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # A message whose statement could not be applied now (a store or bucket failure, or an object
    # that is not a statement) is handed back; after the queue's receive count it goes to the
    # redrive queue, which is alarmed. A conflict (other bytes under an applied key) is not retried:
    # the first bytes stand, and the statement_conflicts alarm says so.
    job = ingest()
    counts = {"statements_applied": 0, "statements_duplicate": 0, "statement_conflicts": 0}
    failures = []
    for message in event.get("Records", []):
        try:
            for key in notified_keys(message["body"]):
                counts["statements_applied" if job.apply(key) else "statements_duplicate"] += 1
        except StatementConflictError as error:
            counts["statement_conflicts"] += 1
            logger.error("statement conflict", extra={"error": str(error), "metric": "statement_conflicts"})
        except (StatementError, ExchangeError, StoreError, ValueError, KeyError) as error:
            logger.warning(
                "statement not applied", extra={"message_id": message.get("messageId"), "error": str(error)}
            )
            failures.append({"itemIdentifier": message["messageId"]})
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    return {"batchItemFailures": failures}
