"""Logs and alerts for one Azure cell: a Log Analytics workspace, workspace-based Application
Insights (Entra-only ingestion), and metric alerts to one action group: exceptions per job,
Event Hubs throttling and server errors, and ledger availability."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native.applicationinsights as applicationinsights
import pulumi_azure_native.monitor as monitor
import pulumi_azure_native.operationalinsights as operationalinsights

from infra.components.azure.roles import OWNER


@dataclass(frozen=True, slots=True)
class InsightsArgs:
    cell: str
    location: str
    resource_group: pulumi.Input[str]
    retention_days: int
    tags: Mapping[str, str]


class Insights(pulumi.ComponentResource):
    component_id: pulumi.Output[str]
    connection_string: pulumi.Output[str]

    def __init__(self, name: str, args: InsightsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:azure:Insights", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        workspace = operationalinsights.Workspace(
            "logs",
            workspace_name=f"{args.cell}-logs",
            resource_group_name=args.resource_group,
            location=args.location,
            sku={"name": "PerGB2018"},
            retention_in_days=args.retention_days,
            tags=dict(args.tags),
            opts=child,
        )
        component = applicationinsights.Component(
            "insights",
            resource_name_=f"{args.cell}-insights",
            resource_group_name=args.resource_group,
            location=args.location,
            kind="web",
            application_type="web",
            workspace_resource_id=workspace.id,
            ingestion_mode="LogAnalytics",
            disable_local_auth=True,
            tags=dict(args.tags),
            opts=child,
        )
        self.component_id = component.id
        self.connection_string = component.connection_string
        self.cost_items: list[dict[str, Any]] = [
            {
                "kind": "log_analytics_workspace",
                "name": f"{args.cell}-logs",
                "retention_days": args.retention_days,
            }
        ]
        self.register_outputs({"insights": self.component_id})


@dataclass(frozen=True, slots=True)
class AlertsArgs:
    cell: str
    resource_group: pulumi.Input[str]
    insights_id: pulumi.Input[str]
    jobs: Sequence[tuple[str, pulumi.Input[str]]]
    """(job, app name) pairs."""
    namespace_id: pulumi.Input[str]
    ledger_account_id: pulumi.Input[str]
    tags: Mapping[str, str]


class Alerts(pulumi.ComponentResource):
    alert_count: int

    def __init__(self, name: str, args: AlertsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:azure:Alerts", name, None, opts)
        self.args = args
        self.child = pulumi.ResourceOptions(parent=self)
        self.group = monitor.ActionGroup(
            "alerts",
            action_group_name=f"{args.cell}-alerts",
            group_short_name=args.cell[:12],
            resource_group_name=args.resource_group,
            location="global",
            enabled=True,
            arm_role_receivers=[{"name": "owners", "role_id": OWNER, "use_common_alert_schema": True}],
            tags=dict(args.tags),
            opts=self.child,
        )
        self.alert_count = 0
        for job, app in args.jobs:
            self._alert(
                f"{job}-exceptions",
                f"{job}: exceptions in the last 5 minutes",
                args.insights_id,
                "microsoft.insights/components",
                "exceptions/count",
                "Count",
                0,
                dimensions=[{"name": "cloud/roleName", "operator": "Include", "values": [app]}],
            )
        for metric in ("ThrottledRequests", "ServerErrors"):
            self._alert(
                f"events-{metric.lower()}",
                f"Event Hubs: {metric} in the last 5 minutes",
                args.namespace_id,
                "Microsoft.EventHub/namespaces",
                metric,
                "Total",
                0,
            )
        self._alert(
            "ledger-availability",
            "ledger tables: availability under 99.9%",
            pulumi.Output.concat(args.ledger_account_id, "/tableServices/default"),
            "Microsoft.Storage/storageAccounts/tableServices",
            "Availability",
            "Average",
            99.9,
            operator="LessThan",
        )
        self.cost_items: list[dict[str, Any]] = [{"kind": "monitor_metric_alert", "count": self.alert_count}]
        self.register_outputs({"action_group": self.group.id})

    def _alert(
        self,
        name: str,
        description: str,
        scope: pulumi.Input[str],
        namespace: str,
        metric: str,
        aggregation: str,
        threshold: float,
        *,
        operator: str = "GreaterThan",
        dimensions: list[dict[str, Any]] | None = None,
    ) -> None:
        monitor.MetricAlert(
            name,
            rule_name=f"{self.args.cell}-{name}",
            resource_group_name=self.args.resource_group,
            location="global",
            description=description,
            severity=2,
            enabled=True,
            scopes=[scope],
            evaluation_frequency="PT5M",
            window_size="PT5M",
            auto_mitigate=True,
            criteria={
                "odata_type": "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria",
                "all_of": [
                    {
                        "criterion_type": "StaticThresholdCriterion",
                        "name": metric.replace("/", "-"),
                        "metric_name": metric,
                        "metric_namespace": namespace,
                        "operator": operator,
                        "threshold": threshold,
                        "time_aggregation": aggregation,
                        "dimensions": dimensions or [],
                    }
                ],
            },
            actions=[{"action_group_id": self.group.id}],
            tags=dict(self.args.tags),
            opts=self.child,
        )
        self.alert_count += 1
