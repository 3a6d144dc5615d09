"""Alarms and a dashboard for the billing home, all notifying one encrypted SNS topic.

Beyond each function's errors and throttles and the ledgers' throttles, the home alarms on what
only it can see (the handlers' own metrics, namespace `meterline`, dimension `service` = job):
- `ingest` `statement_conflicts`: a statement whose key was already applied with other bytes;
- `close` `silent_cells` (Maximum): at a period's deadline (`end + grace + cell_wait`) the cells
  that never reported it final, so the home issued without them (their usage becomes amendments);
- statement notifications that failed `INGEST_RECEIVES` times (the redrive queue), and
  schedule failures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.aws.home_functions import HomeFunctions
from infra.components.aws.ledgers import Ledgers
from infra.components.aws.operations import HANDLER_NAMESPACE, MAPPING_ALARMS, Alarm, kebab, metric_alarm
from infra.components.aws.statements import Statements

HOME_HANDLER_METRICS = {
    "ingest": ("statements_applied", "statements_duplicate", "statements_late", "statement_conflicts"),
    "rate": ("spend_alerts_published",),
    "close": ("periods_closed", "amendments_issued", "silent_cells"),
}
"""What each home handler counts, charted on the dashboard."""
HOME_HANDLER_ALARMS = {"ingest": ("statement_conflicts",), "close": ("silent_cells",)}


@dataclass(frozen=True, slots=True)
class HomeOperationsArgs:
    home: str
    region: str
    ledgers: Ledgers
    statements: Statements
    functions: HomeFunctions
    tags: Mapping[str, str]


class HomeOperations(pulumi.ComponentResource):
    alarm_topic_arn: pulumi.Output[str]
    dashboard_name: pulumi.Output[str]
    alarm_count: int
    cost_items: list[dict[str, Any]]

    def __init__(
        self, name: str, args: HomeOperationsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("meterline:aws:HomeOperations", name, None, opts)
        self.args = args
        topic = aws.sns.Topic(
            "alarms",
            name=f"{args.home}-alarms",
            kms_master_key_id=args.ledgers.key_arn,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
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
                    f"{job}: {metric.lower()} in the last 5 minutes",
                )
        for job, uuid in args.functions.mappings.items():
            for metric, meaning in MAPPING_ALARMS.items():
                self._alarm(
                    f"{job}-{kebab(metric.removesuffix('EventCount'))}",
                    "AWS/Lambda",
                    metric,
                    {"EventSourceMappingUUID": uuid},
                    f"{job}: {meaning}",
                )
        for job, metrics in HOME_HANDLER_ALARMS.items():
            for metric in metrics:
                self._alarm(
                    f"{job}-{metric.replace('_', '-')}",
                    HANDLER_NAMESPACE,
                    metric,
                    {"service": job},
                    f"{job}: {metric.replace('_', ' ')} (see its log for which)",
                    statistic="Maximum",
                )
        for label, queue, meaning in (
            (
                "statements-redrive",
                args.statements.redrive_queue_name,
                "statement notifications ingest gave up on",
            ),
            ("failures-queue", args.functions.failure_queue_name, "rate or close schedule failures"),
        ):
            self._alarm(
                label,
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                {"QueueName": queue},
                meaning,
                statistic="Maximum",
            )
        for table, ledger in args.ledgers.tables.items():
            for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
                self._alarm(
                    f"{table}-{metric.removesuffix('ThrottleEvents').lower()}-throttles",
                    "AWS/DynamoDB",
                    metric,
                    {"TableName": ledger.name},
                    f"ledger {table}: {metric} in the last 5 minutes",
                )
        dashboard = aws.cloudwatch.Dashboard(
            "home",
            dashboard_name=args.home,
            dashboard_body=pulumi.Output.all(
                functions=[deployed.name for deployed in args.functions.functions.values()],
                tables=[ledger.name for ledger in args.ledgers.tables.values()],
                queues=[args.statements.queue_name, args.statements.redrive_queue_name],
            ).apply(lambda names: json.dumps(home_dashboard_body(args.region, args.home, **names))),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.dashboard_name = dashboard.dashboard_name
        self.cost_items = [
            {"kind": "cloudwatch_alarm", "count": self.alarm_count},
            {"kind": "cloudwatch_dashboard", "count": 1},
            {"kind": "sns_topic", "name": f"{args.home}-alarms", "count": 1},
        ]
        self.register_outputs({"alarm_topic_arn": self.alarm_topic_arn, "dashboard": self.dashboard_name})

    def _alarm(
        self,
        name: str,
        namespace: str,
        metric: str,
        dimensions: Mapping[str, pulumi.Input[str]],
        description: str,
        statistic: str = "Sum",
    ) -> None:
        alarm = Alarm(self.args.home, name, namespace, metric, dimensions, 0, description, statistic)
        metric_alarm(self, alarm, self.alarm_topic_arn, self.args.tags)
        self.alarm_count += 1


def home_dashboard_body(
    region: str, home: str, functions: list[str], tables: list[str], queues: list[str]
) -> dict[str, Any]:
    def widget(title: str, metrics: list[list[Any]], y: int, x: int = 0, stat: str = "Sum") -> dict[str, Any]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {"title": title, "region": region, "stat": stat, "period": 300, "metrics": metrics},
        }

    return {
        "widgets": [
            widget(
                f"{home}: invocations",
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
                "statements",
                [[HANDLER_NAMESPACE, m, "service", "ingest"] for m in HOME_HANDLER_METRICS["ingest"]],
                6,
            ),
            widget(
                "closes, amendments and silent cells",
                [
                    [HANDLER_NAMESPACE, m, "service", job]
                    for job in ("rate", "close")
                    for m in HOME_HANDLER_METRICS[job]
                ],
                6,
                12,
            ),
            widget(
                "statement notifications waiting",
                [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q] for q in queues],
                12,
                stat="Maximum",
            ),
            widget(
                "ledger consumed writes",
                [["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", t] for t in tables],
                12,
                12,
            ),
        ]
    }
