"""Alarms and a dashboard for one cell, all notifying one encrypted SNS topic.

Consumer lag is MSK's own `MaxOffsetLag` for the meter's consumer group, alarmed at five minutes
of the stack's expected event rate; the table streams' lag is the functions' `IteratorAge`.

A handler that hands records back (a partial batch response) does not fail its invocation, so
Lambda's `Errors` never counts it: each trigger's own metrics do (`FailedInvokeEventCount`), and
records it gives up on are alarmed the moment they are dropped or sent to the on-failure
destination, not when a daily storage metric notices the bucket. The handlers' own metrics
(namespace `meterline`, dimension `service` = job, as Powertools writes them) alarm on rejected
and dead-lettered events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.aws.functions import Functions
from infra.components.aws.kafka import Kafka
from infra.components.aws.ledgers import Ledgers
from meterline.topology import TriggerKind

LAG_MINUTES = 5
ITERATOR_AGE_ALARM_MS = 5 * 60 * 1000
HANDLER_NAMESPACE = "meterline"
HANDLER_METRICS = {
    "meter": ("events_accepted", "events_duplicate", "events_rejected", "dead_lettered"),
    "aggregate": ("usage_aggregated", "dead_lettered"),
    "publish": ("statements_published", "periods_final"),
}
"""What each handler counts (functions/<job>/aws.py), charted on the dashboard."""
HANDLER_ALARMS = {"meter": ("events_rejected", "dead_lettered"), "aggregate": ("dead_lettered",)}
"""Handler metrics that alarm at any count in five minutes: usage that will not be billed as sent
(meter's rejects and unprocessable records, aggregate's records set aside under `dead`)."""
MAPPING_ALARMS = {
    "FailedInvokeEventCount": "records failed or were handed back, and will be retried",
    "DroppedEventCount": "records were given up on after their retries or age",
    "OnFailureDestinationDeliveredEventCount": "records were sent to the on-failure destination",
}
"""Event source mapping metrics (the EventCount group) that alarm at any count in five minutes."""


@dataclass(frozen=True, slots=True)
class OperationsArgs:
    cell: str
    region: str
    events_per_second: Decimal
    kafka: Kafka
    ledgers: Ledgers
    functions: Functions
    tags: Mapping[str, str]


class Operations(pulumi.ComponentResource):
    alarm_topic_arn: pulumi.Output[str]
    dashboard_name: pulumi.Output[str]
    alarm_count: int
    cost_items: list[dict[str, Any]]

    def __init__(self, name: str, args: OperationsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:aws:Operations", name, None, opts)
        self.args = args
        self.child = pulumi.ResourceOptions(parent=self)
        topic = aws.sns.Topic(
            "alarms",
            name=f"{args.cell}-alarms",
            kms_master_key_id=args.ledgers.key_arn,
            tags=dict(args.tags),
            opts=self.child,
        )
        self.alarm_topic_arn = topic.arn
        self.alarm_count = 0
        for job, deployed in args.functions.functions.items():
            for metric in ("Errors", "Throttles"):
                self._alarm(
                    f"{job}-{metric.lower()}",
                    "AWS/Lambda",
                    metric,
                    {"FunctionName": deployed.name},
                    threshold=0,
                    description=f"{job}: {metric.lower()} in the last 5 minutes",
                )
            if deployed.definition.trigger is TriggerKind.TABLE_STREAM:
                self._alarm(
                    f"{job}-iterator-age",
                    "AWS/Lambda",
                    "IteratorAge",
                    {"FunctionName": deployed.name},
                    threshold=ITERATOR_AGE_ALARM_MS,
                    statistic="Maximum",
                    description=f"{job}: its table stream is more than 5 minutes behind",
                )
            if deployed.definition.trigger is TriggerKind.KAFKA:
                lag = int(args.events_per_second * 60 * LAG_MINUTES)
                self._alarm(
                    f"{job}-consumer-lag",
                    "AWS/Kafka",
                    "MaxOffsetLag",
                    {
                        "Cluster Name": args.kafka.cluster_name,
                        "Consumer Group": f"{args.cell}-{job}",
                        "Topic": deployed.definition.source,
                    },
                    threshold=lag,
                    statistic="Maximum",
                    description=f"{job}: more than {LAG_MINUTES} minutes of expected events behind",
                )
        for job, uuid in args.functions.mappings.items():
            for metric, meaning in MAPPING_ALARMS.items():
                self._alarm(
                    f"{job}-{kebab(metric.removesuffix('EventCount'))}",
                    "AWS/Lambda",
                    metric,
                    {"EventSourceMappingUUID": uuid},
                    threshold=0,
                    description=f"{job}: {meaning}",
                )
        for job, metrics in HANDLER_ALARMS.items():
            for metric in metrics:
                self._alarm(
                    f"{job}-{metric.replace('_', '-')}",
                    HANDLER_NAMESPACE,
                    metric,
                    {"service": job},
                    threshold=0,
                    description=f"{job}: {metric.replace('_', ' ')} in the last 5 minutes",
                )
        self._alarm(
            "failures-queue",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            {"QueueName": args.functions.failure_queue_name},
            threshold=0,
            statistic="Maximum",
            description="stream or schedule failures were dead-lettered",
        )
        for table, ledger in args.ledgers.tables.items():
            for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
                self._alarm(
                    f"{table}-{metric.removesuffix('ThrottleEvents').lower()}-throttles",
                    "AWS/DynamoDB",
                    metric,
                    {"TableName": ledger.name},
                    threshold=0,
                    description=f"ledger {table}: {metric} in the last 5 minutes",
                )
        dashboard = aws.cloudwatch.Dashboard(
            "cell",
            dashboard_name=args.cell,
            dashboard_body=pulumi.Output.all(
                functions=[deployed.name for deployed in args.functions.functions.values()],
                tables=[ledger.name for ledger in args.ledgers.tables.values()],
                cluster=args.kafka.cluster_name,
                mappings=args.functions.mappings,
            ).apply(
                lambda names: json.dumps(
                    dashboard_body(
                        args.region, args.cell, topics=[t.name for t in args.kafka.topics], **names
                    )
                )
            ),
            opts=self.child,
        )
        self.dashboard_name = dashboard.dashboard_name
        self.cost_items = [
            {"kind": "cloudwatch_alarm", "count": self.alarm_count},
            {"kind": "cloudwatch_dashboard", "count": 1},
            {"kind": "sns_topic", "name": f"{args.cell}-alarms", "count": 1},
        ]
        self.register_outputs({"alarm_topic_arn": self.alarm_topic_arn, "dashboard": self.dashboard_name})

    def _alarm(
        self,
        name: str,
        namespace: str,
        metric: str,
        dimensions: Mapping[str, pulumi.Input[str]],
        *,
        threshold: int,
        description: str,
        statistic: str = "Sum",
    ) -> None:
        metric_alarm(
            self,
            Alarm(self.args.cell, name, namespace, metric, dimensions, threshold, description, statistic),
            self.alarm_topic_arn,
            self.args.tags,
        )
        self.alarm_count += 1


@dataclass(frozen=True)
class Alarm:
    """`<cell>-<name>`: `metric` over five minutes above `threshold`."""

    cell: str
    name: str
    namespace: str
    metric: str
    dimensions: Mapping[str, pulumi.Input[str]]
    threshold: int
    description: str
    statistic: str = "Sum"
    period: int = 300


def metric_alarm(
    parent: pulumi.Resource, alarm: Alarm, topic_arn: pulumi.Input[str], tags: Mapping[str, str]
) -> aws.cloudwatch.MetricAlarm:
    """The alarm, notifying `topic_arn` when it fires and when it clears."""
    return aws.cloudwatch.MetricAlarm(
        alarm.name,
        name=f"{alarm.cell}-{alarm.name}",
        namespace=alarm.namespace,
        metric_name=alarm.metric,
        dimensions=dict(alarm.dimensions),
        statistic=alarm.statistic,
        period=alarm.period,
        evaluation_periods=1,
        threshold=alarm.threshold,
        comparison_operator="GreaterThanThreshold",
        treat_missing_data="notBreaching",
        alarm_description=alarm.description,
        alarm_actions=[topic_arn],
        ok_actions=[topic_arn],
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )


def kebab(name: str) -> str:
    """`FailedInvoke` → `failed-invoke`."""
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")


def dashboard_body(
    region: str,
    cell: str,
    functions: list[str],
    tables: list[str],
    cluster: str,
    topics: list[str],
    mappings: dict[str, str],
) -> dict[str, Any]:
    def widget(title: str, metrics: list[list[Any]], y: int, x: int = 0) -> dict[str, Any]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "stat": "Sum",
                "period": 300,
                "metrics": metrics,
            },
        }

    return {
        "widgets": [
            widget(
                f"{cell}: invocations",
                [["AWS/Lambda", "Invocations", "FunctionName", f] for f in functions],
                0,
            ),
            widget(
                "errors and throttles",
                [["AWS/Lambda", m, "FunctionName", f] for f in functions for m in ("Errors", "Throttles")],
                0,
                12,
            ),
            widget(
                "duration (p99)",
                [["AWS/Lambda", "Duration", "FunctionName", f, {"stat": "p99"}] for f in functions],
                6,
            ),
            # MSK Serverless reports bytes per topic only: a widget without the Topic dimension stays empty
            widget(
                "Kafka bytes in per topic",
                [["AWS/Kafka", "BytesInPerSec", "Cluster Name", cluster, "Topic", t] for t in topics],
                6,
                12,
            ),
            widget(
                "ledger consumed writes",
                [["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", t] for t in tables],
                12,
            ),
            widget(
                "ledger throttles",
                [
                    ["AWS/DynamoDB", m, "TableName", t]
                    for t in tables
                    for m in ("ReadThrottleEvents", "WriteThrottleEvents")
                ],
                12,
                12,
            ),
            widget(
                "meter outcomes",
                [[HANDLER_NAMESPACE, m, "service", "meter"] for m in HANDLER_METRICS["meter"]],
                18,
            ),
            widget(
                "job results",
                [
                    [HANDLER_NAMESPACE, m, "service", job]
                    for job, names in HANDLER_METRICS.items()
                    if job != "meter"
                    for m in names
                ],
                18,
                12,
            ),
            widget(
                "triggers: failed, dropped, sent to the on-failure destination",
                [
                    ["AWS/Lambda", metric, "EventSourceMappingUUID", uuid, {"label": f"{job} {metric}"}]
                    for job, uuid in sorted(mappings.items())
                    for metric in MAPPING_ALARMS
                ],
                24,
            ),
        ]
    }
