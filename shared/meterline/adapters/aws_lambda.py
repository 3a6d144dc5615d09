"""The AWS Lambda functions' adapter: their settings (the jobs on DynamoDB and MSK), the decoding of
their triggers and the processors that answer them. The handlers pass ``os.environ`` in; nothing
here reads the environment itself.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from meterline.pipeline.meter import DeliveredRecord
from meterline.pipeline.processing import AggregateProcessor, MeterProcessor, MeterReport
from meterline.ports import Item, Publisher, Store
from meterline.records import AcceptedUsage, Delivery
from meterline.settings import CellSettings, KafkaAuth, SettingsError, env

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

    from meterline.bootstrap import Jobs
    from meterline.exchange import Exchange
    from meterline.pipeline.aggregate import Aggregator, StreamRecord
    from meterline.pipeline.ingest import Ingest
    from meterline.pipeline.meter import Meter


@dataclass(frozen=True, kw_only=True)
class AwsSettings(CellSettings):
    """What a Lambda function of the cell reads from its environment."""

    cloud: ClassVar[str] = "aws"

    region: str = env("AWS_REGION", "us-east-1", platform=True)
    dynamodb_endpoint: str = env("METERLINE_DYNAMODB_ENDPOINT", "")
    """A DynamoDB endpoint other than AWS's (a moto server): for clients of a local cell only."""
    notification_topics: str = env("METERLINE_NOTIFICATION_TOPICS", "")
    """The billing home: a JSON object, topic name → SNS topic ARN, where it announces (no broker)."""

    def open_store(self) -> Store:
        import boto3

        from meterline.adapters.dynamodb import DynamoStore

        client = boto3.client(
            "dynamodb", region_name=self.region, endpoint_url=self.dynamodb_endpoint or None
        )
        return DynamoStore(client, self.table_prefix)

    def open_publisher(self) -> Publisher:
        if self.notification_topics:
            return self.open_notifications()
        from meterline.adapters.kafka import KafkaPublisher, msk_iam_config

        bootstrap = self.require_kafka()
        if self.kafka_auth is KafkaAuth.IDENTITY:
            return KafkaPublisher(msk_iam_config(bootstrap, self.region))
        return KafkaPublisher({"bootstrap.servers": bootstrap})

    def open_notifications(self) -> Publisher:
        import json

        import boto3

        from meterline.adapters.sns import SnsPublisher

        try:
            topics = json.loads(self.notification_topics)
        except ValueError:
            raise SettingsError("METERLINE_NOTIFICATION_TOPICS must be a JSON object of topic ARNs") from None
        if not isinstance(topics, dict):
            raise SettingsError("METERLINE_NOTIFICATION_TOPICS must be a JSON object of topic ARNs")
        return SnsPublisher(boto3.client("sns", region_name=self.region), topics)

    def open_exchange(self) -> Exchange:
        """A cell's publish: the home's bucket as the cell's statements role, assumed with the
        function's own role. The home's ingest: its own bucket, with its own role."""
        from meterline.adapters.s3 import S3Exchange, home_exchange

        if not self.statements_role_arn:
            import boto3

            if not self.statements_bucket:
                raise SettingsError("the function setting METERLINE_STATEMENTS_BUCKET is missing")
            return S3Exchange(boto3.client("s3", region_name=self.region), self.statements_bucket)
        return home_exchange(self.cell_name, *self.require_home())


def stream_image(image: Mapping[str, Mapping[str, Any]]) -> Item:
    """A DynamoDB stream record's NewImage as a store item (binary values arrive base64-encoded)."""
    from meterline.adapters.dynamodb import decode_item

    decoded = {
        name: ({"B": base64.b64decode(value["B"])} if "B" in value and isinstance(value["B"], str) else value)
        for name, value in image.items()
    }
    return decode_item(decoded)  # type: ignore[arg-type]


def usage_from_stream(image: Mapping[str, Mapping[str, Any]]) -> AcceptedUsage:
    return AcceptedUsage.from_item(stream_image(image))


def stream_records(event: Mapping[str, Any], aggregator: Aggregator) -> list[StreamRecord]:
    """The usage ledger's new items in a DynamoDB stream event. One that cannot be read as
    accepted usage is set aside by the aggregator, not left to fail its shard's every retry."""
    from meterline.pipeline.aggregate import StreamRecord

    records = []
    for record in event.get("Records", []):
        if not _inserted(record):
            continue
        change = record["dynamodb"]
        try:
            usage = usage_from_stream(change["NewImage"])
        except Exception as error:
            aggregator.set_aside(
                change["SequenceNumber"], f"unreadable usage item: {type(error).__name__}: {error}"
            )
            continue
        records.append(StreamRecord(change["SequenceNumber"], usage))
    return records


def msk_records(event: Mapping[str, Any]) -> Iterator[DeliveredRecord]:
    """An MSK trigger event's records in partition order, decoded as the meter reads them.

    A generator, not a list: each record's objects die young, which spares the batch a share of
    Python's garbage collection. A record without a value (a tombstone) is read as empty bytes, to
    be rejected and dead-lettered like any other record that is not an event.
    """
    for records in event["records"].values():
        for record in records:
            key, value = record.get("key"), record.get("value")
            yield DeliveredRecord(
                Delivery(record["topic"], record["partition"], record["offset"]),
                None if key is None else _decoded(key),
                b"" if value is None else _decoded(value),
            )


def _decoded(text: str) -> bytes:
    """Base64 as MSK sends it; text that is not base64 is kept as it is, to be rejected as malformed."""
    try:
        return binascii.a2b_base64(text)
    except (binascii.Error, ValueError):
        return text.encode("utf-8", "backslashreplace") if isinstance(text, str) else bytes(text)


# Trigger processors: decode the event, process each record under the shared failure policy
# (pipeline.processing), log and measure once per batch, and answer as the trigger expects.


class Telemetry:
    """A function's Powertools logger and metrics."""

    def __init__(self, logger: Logger, metrics: Metrics) -> None:
        self.logger = logger
        self.metrics = metrics

    def count(self, name: str, value: int) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


class KafkaBatch(Telemetry):
    """meter's MSK trigger. The batch goes through the policy at once, not record by record through
    Powertools' BatchProcessor (a third of the handler's time): a failed record hands back the rest
    of its partition, and the response lists what is handed back. Nothing fails the invocation: a
    bad record is rejected, a failing one handed back until it has had its attempts."""

    def process(self, event: Mapping[str, Any], meter: Meter) -> dict[str, Any]:
        report = MeterProcessor(meter).run(msk_records(event))
        self.log(report)
        self.measure(report)
        return {"batchItemFailures": item_failures(report.failed)}

    def log(self, report: MeterReport) -> None:
        """One line per reject and per stalled partition; the correlation id is the record's
        delivery, as in the outcomes ledger's key and the dead letter's ``delivery`` header."""
        for delivery, reason in report.rejections:
            self.logger.info("event rejected", extra={"correlation_id": str(delivery), "reason": reason})
        for delivery, attempts in report.dead_letters:
            self.logger.error(
                "record dead-lettered after failing every attempt",
                extra={"correlation_id": str(delivery), "attempts": attempts, "metric": "dead_lettered"},
            )
        for delivery, error in report.stalls:
            self.logger.warning(
                "record handed back with the rest of its partition",
                extra={"correlation_id": str(delivery)},
                exc_info=error,
            )

    def measure(self, report: MeterReport) -> None:
        """Outcome metrics once per batch: Powertools' add_metric per record cost a sixth of the handler."""
        outcomes: dict[str, int] = {
            "events_accepted": report.accepted,
            "events_duplicate": report.duplicates,
            "events_rejected": report.rejected,
            **{f"rejected_{reason}": n for reason, n in report.rejected_by_reason.items()},
            "dead_lettered": len(report.dead_letters),
        }
        for name, value in sorted(outcomes.items()):
            if value:
                self.count(name, value)


def item_failures(failed: Iterable[DeliveredRecord]) -> list[dict[str, Any]]:
    """Kafka's item identifier, as Powertools' BatchProcessor writes it: "topic-partition" and offset."""
    return [
        {"itemIdentifier": {"partition": f"{d.topic}-{d.partition}", "offset": d.offset}}
        for d in (record.delivery for record in failed)
    ]


class UsageStream(Telemetry):
    """aggregate's trigger, the usage ledger's stream. All or nothing: on a store error the whole
    batch is retried from its first record, and the markers committed with each billing period's
    partial make that safe; a record that cannot be applied is set aside and measured."""

    def process(self, event: Mapping[str, Any], aggregator: Aggregator) -> dict[str, Any]:
        before = aggregator.dead_lettered
        applied = AggregateProcessor(aggregator).run(stream_records(event, aggregator))
        self.count("usage_aggregated", applied)
        if aggregator.dead_lettered > before:
            self.count("dead_lettered", aggregator.dead_lettered - before)
        return {"batchItemFailures": []}


class AggregatesStream(Telemetry):
    """rate's trigger, the aggregates ledger's stream: the new partial states among its records."""

    def process(self, event: Mapping[str, Any], cell: Jobs) -> dict[str, Any]:
        from meterline.pipeline.ledger import is_partial

        inserted = [stream_image(r["dynamodb"]["NewImage"]) for r in event.get("Records", []) if _inserted(r)]
        alerts = cell.charges.run([item for item in inserted if is_partial(item)], cell.clock())
        self.count("spend_alerts_published", alerts)
        return {"batchItemFailures": []}


class RateSchedule(Telemetry):
    """The billing home's rate: on a schedule (no stream crosses from the cells), every tenant with
    usage not rolled up yet in every open period, as of the clock."""

    def process(self, home: Jobs) -> dict[str, Any]:
        alerts = home.charges.run_open(home.clock())
        self.count("spend_alerts_published", alerts)
        return {"alerts": alerts}


class Schedule(Telemetry):
    """close's schedule: as of the clock, never of the event, so no payload closes a period early.
    At the billing home (its settings name the cells) a period is issued once every cell reported
    it final, or at its deadline; ``silent_cells`` counts the cells it was issued without (the
    home's alarm), and a JSON line names them (``pipeline.home.silent_cells``)."""

    def process(self, cell: Jobs) -> dict[str, Any]:
        if cell.cells:
            return self.process_home(cell)
        closed = [str(period) for period in cell.closer.run(cell.clock())]
        self.count("periods_closed", len(closed))
        self.logger.info("periods closed", extra={"periods": closed})
        return {"closed": closed}

    def process_home(self, home: Jobs) -> dict[str, Any]:
        decided = home.home.close(home.clock())
        closed = [str(ready.period) for ready in decided if ready.issue]
        without = sorted({cell for ready in decided if ready.issue for cell in ready.silent})
        waiting = [str(ready.period) for ready in decided if not ready.issue]
        self.count("periods_closed", len(closed))
        amendments = sum(home.home.amendments(ready.period) for ready in decided if ready.issue)
        self.count("amendments_issued", amendments)
        self.count("silent_cells", len(without))
        self.logger.info("periods closed", extra={"periods": closed, "waiting_for_cells": waiting})
        return {"closed": closed, "issued_without": without, "waiting": waiting}


def _inserted(record: Mapping[str, Any]) -> bool:
    return record.get("eventName") == "INSERT"


class PublishSchedule(Telemetry):
    """publish's schedule (a cell): as of the clock, as close's."""

    def process(self, cell: Jobs) -> dict[str, Any]:
        run = cell.publish.run_schedule(cell.clock())
        self.count("statements_published", len(run.statements))
        self.count("periods_final", len(run.finals))
        self.logger.info("statements published", extra=run.to_json())
        return run.to_json()


class StatementNotifications(Telemetry):
    """ingest's trigger (the home): SQS batches of the statements bucket's object-created
    notifications. A message whose statement cannot be applied now (a store or bucket failure, an
    object that is not a statement) is handed back; after the queue's receive count it goes to the
    redrive queue, which is alarmed. A conflict (other bytes under an applied key) is not retried:
    the first bytes stand, and the ``statement_conflicts`` alarm says so."""

    def process(self, event: Mapping[str, Any], ingest: Ingest) -> dict[str, Any]:
        from meterline.exchange import ExchangeError
        from meterline.pipeline.ingest import StatementConflictError
        from meterline.ports import StoreError
        from meterline.statements import StatementError

        counts = {"statements_applied": 0, "statements_duplicate": 0, "statement_conflicts": 0}
        late_before = ingest.late
        failures = []
        for message in event.get("Records", []):
            try:
                for key in notified_keys(message["body"]):
                    counts["statements_applied" if ingest.apply(key) else "statements_duplicate"] += 1
            except StatementConflictError as error:
                counts["statement_conflicts"] += 1
                self.logger.error(
                    "statement conflict", extra={"error": str(error), "metric": "statement_conflicts"}
                )
            except (StatementError, ExchangeError, StoreError, ValueError, KeyError) as error:
                self.logger.warning(
                    "statement not applied",
                    extra={"message_id": message.get("messageId"), "error": str(error)},
                )
                failures.append({"itemIdentifier": message["messageId"]})
        counts["statements_late"] = ingest.late - late_before
        for name, value in counts.items():
            self.count(name, value)
        return {"batchItemFailures": failures}


def notified_keys(message_body: str) -> list[str]:
    """The object keys of an S3 event notification delivered through SQS (URL-encoded in the event);
    none for S3's test event, sent when the notification is configured."""
    import json
    from urllib.parse import unquote_plus

    document = json.loads(message_body)
    return [
        unquote_plus(record["s3"]["object"]["key"])
        for record in document.get("Records", [])
        if str(record.get("eventName", "")).startswith("ObjectCreated:")
    ]
