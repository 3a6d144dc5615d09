"""MSK Serverless cluster with IAM authentication (TLS only), and the ARNs of its topics and
consumer groups for least-privilege policies.

The topics themselves are created by the cell's topic administrator function (see
infra/functions/topics/aws.py): MSK's topic API, behind `aws.msk.Topic`, is for provisioned
clusters only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from meterline.topology import Topic


@dataclass(frozen=True, slots=True)
class KafkaArgs:
    cell: str
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    topics: Sequence[Topic]
    tags: Mapping[str, str]


class Kafka(pulumi.ComponentResource):
    cluster_arn: pulumi.Output[str]
    cluster_name: pulumi.Output[str]
    bootstrap_servers: pulumi.Output[str]
    topics: Sequence[Topic]
    cost_items: list[dict[str, Any]]

    def __init__(self, name: str, args: KafkaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:aws:Kafka", name, None, opts)
        cluster = aws.msk.ServerlessCluster(
            "cluster",
            cluster_name=f"{args.cell}-kafka",
            vpc_configs=[
                {"subnet_ids": list(args.subnet_ids), "security_group_ids": [args.security_group_id]}
            ],
            client_authentication={"sasl": {"iam": {"enabled": True}}},
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.cluster_arn = cluster.arn
        self.cluster_name = cluster.cluster_name
        self.bootstrap_servers = cluster.bootstrap_brokers_sasl_iam
        self.topics = tuple(args.topics)
        self.cost_items = [{"kind": "msk_serverless_cluster", "name": f"{args.cell}-kafka", "count": 1}] + [
            {"kind": "msk_partition", "topic": topic.name, "count": topic.partitions} for topic in args.topics
        ]
        self.register_outputs({"cluster_arn": self.cluster_arn, "bootstrap_servers": self.bootstrap_servers})

    def topic_arn(self, topic: str) -> pulumi.Output[str]:
        return self.cluster_arn.apply(lambda arn: kafka_resource_arn(arn, "topic", topic))

    def group_arn(self, group: str) -> pulumi.Output[str]:
        return self.cluster_arn.apply(lambda arn: kafka_resource_arn(arn, "group", group))


def kafka_resource_arn(cluster_arn: str, kind: str, name: str) -> str:
    """`arn:aws:kafka:R:A:cluster/NAME/UUID` → `arn:aws:kafka:R:A:<kind>/NAME/UUID/<name>`."""
    prefix, _, path = cluster_arn.partition(":cluster/")
    if not path:
        raise ValueError(f"not an MSK cluster ARN: {cluster_arn}")
    return f"{prefix}:{kind}/{path}/{name}"


def topic_spec(topic: Topic) -> dict[str, Any]:
    """What the topic administrator is asked to ensure for one topic."""
    return {
        "name": topic.name,
        "partitions": topic.partitions,
        "retention_ms": topic.retention_hours * 3600 * 1000,
    }
