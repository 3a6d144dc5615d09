"""What a cell's operations and the billing home's share: one encrypted SNS topic that every alarm
notifies, the alarms both raise (functions, triggers, handler metrics, queues, ledgers), and the
dashboard's widgets."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.aws.functions import DeployedFunction
from infra.components.aws.ledgers import Ledger

HANDLER_NAMESPACE = "meterline"
"""The handlers' own metrics (dimension `service` = job), as Powertools writes them."""
MAPPING_ALARMS = {
    "FailedInvokeEventCount": "records failed or were handed back, and will be retried",
    "DroppedEventCount": "records were given up on after their retries or age",
    "OnFailureDestinationDeliveredEventCount": "records were sent to the on-failure destination",
}
"""Event source mapping metrics (the EventCount group) that alarm at any count in five minutes."""


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


class Alarms:
    """The topic `<cell>-alarms` (encrypted with `key_arn`) of `parent`, and the alarms on it."""

    def __init__(
        self, parent: pulumi.Resource, cell: str, key_arn: pulumi.Input[str], tags: Mapping[str, str]
    ) -> None:
        self.parent, self.cell, self.tags = parent, cell, tags
        topic = aws.sns.Topic(
            "alarms",
            name=f"{cell}-alarms",
            kms_master_key_id=key_arn,
            tags=dict(tags),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        self.topic_arn = topic.arn
        self.count = 0

    def alarm(
        self,
        name: str,
        namespace: str,
        metric: str,
        dimensions: Mapping[str, pulumi.Input[str]],
        *,
        description: str,
        threshold: int = 0,
        statistic: str = "Sum",
    ) -> None:
        alarm = Alarm(self.cell, name, namespace, metric, dimensions, threshold, description, statistic)
        metric_alarm(self.parent, alarm, self.topic_arn, self.tags)
        self.count += 1

    def errors_and_throttles(self, job: str, deployed: DeployedFunction) -> None:
        for metric in ("Errors", "Throttles"):
            self.alarm(
                f"{job}-{metric.lower()}",
                "AWS/Lambda",
                metric,
                {"FunctionName": deployed.name},
                description=f"{job}: {metric.lower()} in the last 5 minutes",
            )

    def trigger_failures(self, mappings: Mapping[str, pulumi.Input[str]]) -> None:
        """Records a trigger (job → its event source mapping's UUID) failed, dropped or set aside."""
        for job, uuid in mappings.items():
            for metric, meaning in MAPPING_ALARMS.items():
                self.alarm(
                    f"{job}-{kebab(metric.removesuffix('EventCount'))}",
                    "AWS/Lambda",
                    metric,
                    {"EventSourceMappingUUID": uuid},
                    description=f"{job}: {meaning}",
                )

    def handler_metrics(self, metrics: Mapping[str, tuple[str, ...]], *, when: str, statistic: str) -> None:
        """Each job's `metrics` (its own, `HANDLER_NAMESPACE`) at any count, described `… <when>`."""
        for job, names in metrics.items():
            for metric in names:
                self.alarm(
                    f"{job}-{metric.replace('_', '-')}",
                    HANDLER_NAMESPACE,
                    metric,
                    {"service": job},
                    description=f"{job}: {metric.replace('_', ' ')} {when}",
                    statistic=statistic,
                )

    def waiting(self, name: str, queue_name: pulumi.Input[str], meaning: str) -> None:
        """Any message visible in a dead-letter queue."""
        self.alarm(
            name,
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            {"QueueName": queue_name},
            description=meaning,
            statistic="Maximum",
        )

    def ledger_throttles(self, tables: Mapping[str, Ledger]) -> None:
        for table, ledger in tables.items():
            for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
                self.alarm(
                    f"{table}-{metric.removesuffix('ThrottleEvents').lower()}-throttles",
                    "AWS/DynamoDB",
                    metric,
                    {"TableName": ledger.name},
                    description=f"ledger {table}: {metric} in the last 5 minutes",
                )

    def cost_items(self) -> list[dict[str, Any]]:
        """The alarms, the topic and the one dashboard beside them."""
        return [
            {"kind": "cloudwatch_alarm", "count": self.count},
            {"kind": "cloudwatch_dashboard", "count": 1},
            {"kind": "sns_topic", "name": f"{self.cell}-alarms", "count": 1},
        ]


def kebab(name: str) -> str:
    """`FailedInvoke` → `failed-invoke`."""
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")


def dashboard(
    parent: pulumi.Resource,
    name: str,
    dashboard_name: str,
    body: Callable[..., dict[str, Any]],
    functions: Mapping[str, DeployedFunction],
    ledgers: Mapping[str, Ledger],
    **names: pulumi.Input[Any],
) -> pulumi.Output[str]:
    """The dashboard `body(functions=…, tables=…, **names)` draws, once the names are known; its name."""
    return aws.cloudwatch.Dashboard(
        name,
        dashboard_name=dashboard_name,
        dashboard_body=pulumi.Output.all(
            functions=[deployed.name for deployed in functions.values()],
            tables=[ledger.name for ledger in ledgers.values()],
            **names,
        ).apply(lambda known: json.dumps(body(**known))),
        opts=pulumi.ResourceOptions(parent=parent),
    ).dashboard_name


def widget(
    region: str, title: str, metrics: list[list[Any]], y: int, x: int = 0, stat: str = "Sum"
) -> dict[str, Any]:
    """A half-width metric widget of five-minute `stat`s at (`x`, `y`)."""
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": 12,
        "height": 6,
        "properties": {"title": title, "region": region, "stat": stat, "period": 300, "metrics": metrics},
    }


def function_widgets(region: str, cell: str, functions: list[str]) -> list[dict[str, Any]]:
    """The dashboard's top row: the functions' invocations, and their errors and throttles."""
    return [
        widget(
            region,
            f"{cell}: invocations",
            [["AWS/Lambda", "Invocations", "FunctionName", f] for f in functions],
            0,
        ),
        widget(
            region,
            "errors and throttles",
            [["AWS/Lambda", m, "FunctionName", f] for f in functions for m in ("Errors", "Throttles")],
            0,
            12,
        ),
    ]


def consumed_writes_widget(region: str, tables: list[str], y: int, x: int = 0) -> dict[str, Any]:
    return widget(
        region,
        "ledger consumed writes",
        [["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", t] for t in tables],
        y,
        x,
    )
