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

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

import pulumi

from infra.components.aws.alarms import (
    HANDLER_NAMESPACE,
    MAPPING_ALARMS,
    Alarms,
    consumed_writes_widget,
    dashboard,
    function_widgets,
    widget,
)
from infra.components.aws.functions import Functions
from infra.components.aws.kafka import Kafka
from infra.components.aws.ledgers import Ledgers
from meterline.topology import TriggerKind

LAG_MINUTES = 5
ITERATOR_AGE_ALARM_MS = 5 * 60 * 1000
HANDLER_METRICS = {
    "meter": ("events_accepted", "events_duplicate", "events_rejected", "dead_lettered"),
    "aggregate": ("usage_aggregated", "dead_lettered"),
    "publish": ("statements_published", "periods_final"),
}
"""What each handler counts (functions/<job>/aws.py), charted on the dashboard."""
HANDLER_ALARMS = {"meter": ("events_rejected", "dead_lettered"), "aggregate": ("dead_lettered",)}
"""Handler metrics that alarm at any count in five minutes: usage that will not be billed as sent
(meter's rejects and unprocessable records, aggregate's records set aside under `dead`)."""


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
    cost_items: list[dict[str, Any]]

    def __init__(self, name: str, args: OperationsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:aws:Operations", name, None, opts)
        self.alarms = Alarms(self, args.cell, args.ledgers.key_arn, args.tags)
        self.alarm_topic_arn = self.alarms.topic_arn
        for job, deployed in args.functions.functions.items():
            self.alarms.errors_and_throttles(job, deployed)
            if deployed.definition.trigger is TriggerKind.TABLE_STREAM:
                self.alarms.alarm(
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
                self.alarms.alarm(
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
        self.alarms.trigger_failures(args.functions.mappings)
        self.alarms.handler_metrics(HANDLER_ALARMS, when="in the last 5 minutes", statistic="Sum")
        self.alarms.waiting(
            "failures-queue",
            args.functions.failure_queue_name,
            "stream or schedule failures were dead-lettered",
        )
        self.alarms.ledger_throttles(args.ledgers.tables)
        self.dashboard_name = dashboard(
            self,
            "cell",
            args.cell,
            partial(dashboard_body, args.region, args.cell, topics=[t.name for t in args.kafka.topics]),
            args.functions.functions,
            args.ledgers.tables,
            cluster=args.kafka.cluster_name,
            mappings=args.functions.mappings,
        )
        self.cost_items = self.alarms.cost_items()
        self.register_outputs({"alarm_topic_arn": self.alarm_topic_arn, "dashboard": self.dashboard_name})


def dashboard_body(
    region: str,
    cell: str,
    functions: list[str],
    tables: list[str],
    cluster: str,
    topics: list[str],
    mappings: dict[str, str],
) -> dict[str, Any]:
    return {
        "widgets": [
            *function_widgets(region, cell, functions),
            widget(
                region,
                "duration (p99)",
                [["AWS/Lambda", "Duration", "FunctionName", f, {"stat": "p99"}] for f in functions],
                6,
            ),
            # MSK Serverless reports bytes per topic only: a widget without the Topic dimension stays empty
            widget(
                region,
                "Kafka bytes in per topic",
                [["AWS/Kafka", "BytesInPerSec", "Cluster Name", cluster, "Topic", t] for t in topics],
                6,
                12,
            ),
            consumed_writes_widget(region, tables, 12),
            widget(
                region,
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
                region,
                "meter outcomes",
                [[HANDLER_NAMESPACE, m, "service", "meter"] for m in HANDLER_METRICS["meter"]],
                18,
            ),
            widget(
                region,
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
                region,
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
