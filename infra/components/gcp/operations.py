"""Cloud Monitoring alert policies for one cell, notifying a CMEK-encrypted Pub/Sub topic:
server errors of each function, and the age of the oldest undelivered message on each bridge topic
(the GCP face of consumer lag)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from infra.components.gcp.functions import Functions
from infra.components.gcp.kafka import Kafka
from infra.components.gcp.keys import Keys
from infra.components.gcp.project import Project, after

LAG_SECONDS = 5 * 60


@dataclass(frozen=True, slots=True)
class OperationsArgs:
    cell: str
    region: str
    project: Project
    kafka: Kafka
    functions: Functions
    keys: Keys
    labels: Mapping[str, str]


class Operations(pulumi.ComponentResource):
    alert_topic: pulumi.Output[str]
    alert_count: int

    def __init__(self, name: str, args: OperationsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:gcp:Operations", name, None, opts)
        self.args = args
        self.child = args.project.children(self, "pubsub", "monitoring")
        topic = gcp.pubsub.Topic(
            "alerts",
            name=f"{args.cell}-alerts",
            kms_key_name=args.keys.key_id,
            labels=dict(args.labels),
            opts=after(self.child, args.keys.grants),
        )
        monitoring = args.project.agents["monitoring"]
        gcp.pubsub.TopicIAMMember(
            "alerts-monitoring-publishes",
            topic=topic.name,
            role="roles/pubsub.publisher",
            member=monitoring.email.apply(lambda email: f"serviceAccount:{email}"),
            opts=after(self.child, [monitoring.created_by]),
        )
        self.channel = gcp.monitoring.NotificationChannel(
            "alerts",
            display_name=f"{args.cell} alerts",
            type="pubsub",
            labels={"topic": topic.id},
            user_labels=dict(args.labels),
            opts=self.child,
        )
        self.alert_topic = topic.name
        self.alert_count = 0
        for job, deployed in args.functions.functions.items():
            self._alert(
                f"{job}-errors",
                f"{job}: server errors in the last 5 minutes",
                pulumi.Output.concat(
                    'resource.type = "cloud_run_revision" AND resource.labels.service_name = "',
                    deployed.service,
                    '" AND metric.type = "run.googleapis.com/request_count"'
                    ' AND metric.labels.response_code_class = "5xx"',
                ),
                threshold=0,
                aligner="ALIGN_SUM",
            )
        for kafka_topic, bridge in args.kafka.bridges.items():
            self._alert(
                f"{kafka_topic.replace('.', '-')}-lag",
                f"{kafka_topic}: deliveries more than {LAG_SECONDS // 60} minutes behind",
                pulumi.Output.concat(
                    'resource.type = "pubsub_topic" AND resource.labels.topic_id = "',
                    bridge.pubsub_topic_name,
                    '" AND metric.type = "pubsub.googleapis.com/topic/oldest_unacked_message_age_by_region"',
                ),
                threshold=LAG_SECONDS,
                aligner="ALIGN_MAX",
            )
        self.cost_items: list[dict[str, Any]] = [
            {"kind": "monitoring_alert_policy", "count": self.alert_count},
            {"kind": "pubsub_topic", "name": f"{args.cell}-alerts", "topic": "alerts"},
        ]
        self.register_outputs({"alert_topic": self.alert_topic})

    def _alert(
        self, name: str, description: str, metric_filter: pulumi.Input[str], *, threshold: int, aligner: str
    ) -> None:
        gcp.monitoring.AlertPolicy(
            name,
            display_name=f"{self.args.cell}-{name}",
            combiner="OR",
            severity="ERROR",
            documentation={"content": description, "mime_type": "text/markdown"},
            conditions=[
                {
                    "display_name": description,
                    "condition_threshold": {
                        "filter": metric_filter,
                        "comparison": "COMPARISON_GT",
                        "threshold_value": threshold,
                        "duration": "0s",
                        "aggregations": [{"alignment_period": "300s", "per_series_aligner": aligner}],
                    },
                }
            ],
            notification_channels=[self.channel.id],
            user_labels=dict(self.args.labels),
            opts=self.child,
        )
        self.alert_count += 1
