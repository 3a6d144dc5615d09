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

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import pulumi

from infra.components.aws.alarms import (
    HANDLER_NAMESPACE,
    Alarms,
    consumed_writes_widget,
    dashboard,
    function_widgets,
    widget,
)
from infra.components.aws.home_functions import HomeFunctions
from infra.components.aws.ledgers import Ledgers
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
    cost_items: list[dict[str, Any]]

    def __init__(
        self, name: str, args: HomeOperationsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("meterline:aws:HomeOperations", name, None, opts)
        self.alarms = Alarms(self, args.home, args.ledgers.key_arn, args.tags)
        self.alarm_topic_arn = self.alarms.topic_arn
        for job, deployed in args.functions.functions.items():
            self.alarms.errors_and_throttles(job, deployed)
        self.alarms.trigger_failures(args.functions.mappings)
        self.alarms.handler_metrics(HOME_HANDLER_ALARMS, when="(see its log for which)", statistic="Maximum")
        self.alarms.waiting(
            "statements-redrive",
            args.statements.redrive_queue_name,
            "statement notifications ingest gave up on",
        )
        self.alarms.waiting(
            "failures-queue", args.functions.failure_queue_name, "rate or close schedule failures"
        )
        self.alarms.ledger_throttles(args.ledgers.tables)
        self.dashboard_name = dashboard(
            self,
            "home",
            args.home,
            partial(home_dashboard_body, args.region, args.home),
            args.functions.functions,
            args.ledgers.tables,
            queues=[args.statements.queue_name, args.statements.redrive_queue_name],
        )
        self.cost_items = self.alarms.cost_items()
        self.register_outputs({"alarm_topic_arn": self.alarm_topic_arn, "dashboard": self.dashboard_name})


def home_dashboard_body(
    region: str, home: str, functions: list[str], tables: list[str], queues: list[str]
) -> dict[str, Any]:
    return {
        "widgets": [
            *function_widgets(region, home, functions),
            widget(
                region,
                "statements",
                [[HANDLER_NAMESPACE, m, "service", "ingest"] for m in HOME_HANDLER_METRICS["ingest"]],
                6,
            ),
            widget(
                region,
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
                region,
                "statement notifications waiting",
                [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q] for q in queues],
                12,
                stat="Maximum",
            ),
            consumed_writes_widget(region, tables, 12, 12),
        ]
    }
