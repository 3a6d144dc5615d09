"""Managed Service for Apache Kafka: the cell's cluster and its topics (from the topology), and a
Kafka Connect cluster whose Pub/Sub sink connectors copy the Kafka topics that trigger functions
into Pub/Sub topics: Cloud Run functions have no Kafka trigger, Pub/Sub push is their event source.

Clients authenticate with Google credentials (SASL OAUTHBEARER) over TLS; broker storage is
encrypted with the cell's key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from infra.components.gcp.keys import Keys
from infra.components.gcp.project import Project, after
from infra.config import ManagedKafka
from meterline.topology import Topic

REPLICATION_FACTOR = 3
GIB = 2**30
BRIDGE_RETENTION = f"{7 * 24 * 3600}s"
"""Pub/Sub keeps unacknowledged bridge messages this long (the Kafka topic keeps them too)."""


@dataclass(frozen=True, slots=True)
class KafkaArgs:
    cell: str
    region: str
    project: Project
    subnet_id: pulumi.Input[str]
    capacity: ManagedKafka
    topics: Sequence[Topic]
    bridged: Sequence[str]
    """Topic names that trigger a function, so get a Pub/Sub copy."""
    keys: Keys
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Bridge:
    kafka_topic: str
    pubsub_topic_id: pulumi.Output[str]
    pubsub_topic_name: pulumi.Output[str]


class Kafka(pulumi.ComponentResource):
    cluster_id: pulumi.Output[str]
    cluster_path: pulumi.Output[str]
    bootstrap_servers: pulumi.Output[str]
    bridges: dict[str, Bridge]

    def __init__(self, name: str, args: KafkaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:gcp:Kafka", name, None, opts)
        child = args.project.children(self, "managedkafka", "pubsub")
        capacity = {
            "vcpu_count": str(args.capacity.vcpus),
            "memory_bytes": str(args.capacity.memory_gib * GIB),
        }
        cluster = gcp.managedkafka.Cluster(
            "cluster",
            cluster_id=f"{args.cell}-kafka",
            location=args.region,
            capacity_config=capacity,
            gcp_config={
                "access_config": {"network_configs": [{"subnet": args.subnet_id}]},
                "kms_key": args.keys.key_id,
            },
            rebalance_config={"mode": "AUTO_REBALANCE_ON_SCALE_UP"},
            labels=dict(args.labels),
            opts=after(child, args.keys.grants),
        )
        self.cluster_id = cluster.cluster_id
        self.cluster_path = cluster.id
        self.bootstrap_servers = pulumi.Output.concat(
            "bootstrap.",
            cluster.cluster_id,
            ".",
            args.region,
            ".managedkafka.",
            args.project.project_id,
            ".cloud.goog:9092",
        )
        topics = {
            topic.name: gcp.managedkafka.Topic(
                topic.name.replace(".", "-"),
                topic_id=topic.name,
                cluster=cluster.cluster_id,
                location=args.region,
                partition_count=topic.partitions,
                replication_factor=REPLICATION_FACTOR,
                configs={
                    "retention.ms": str(topic.retention_hours * 3600 * 1000),
                    "cleanup.policy": "delete",
                },
                opts=child,
            )
            for topic in args.topics
        }
        connect = gcp.managedkafka.ConnectCluster(
            "connect",
            connect_cluster_id=f"{args.cell}-connect",
            kafka_cluster=cluster.id,
            location=args.region,
            capacity_config=capacity,
            gcp_config={"access_config": {"network_configs": [{"primary_subnet": args.subnet_id}]}},
            labels=dict(args.labels),
            opts=child,
        )
        self.bridges = {}
        for topic_name in args.bridged:
            self.bridges[topic_name] = self._bridge(args, topic_name, connect, topics[topic_name])
        self.cost_items: list[dict[str, Any]] = [
            {
                "kind": "managed_kafka_cluster",
                "name": f"{args.cell}-kafka",
                "vcpus": args.capacity.vcpus,
                "memory_gib": args.capacity.memory_gib,
            },
            *(
                {
                    "kind": "managed_kafka_topic",
                    "topic": topic.name,
                    "partitions": topic.partitions,
                    "replication_factor": REPLICATION_FACTOR,
                }
                for topic in args.topics
            ),
            {
                "kind": "managed_kafka_connect_cluster",
                "name": f"{args.cell}-connect",
                "vcpus": args.capacity.vcpus,
                "memory_gib": args.capacity.memory_gib,
            },
            *(
                {"kind": "pubsub_topic", "name": f"{args.cell}-{t.replace('.', '-')}", "topic": t}
                for t in args.bridged
            ),
        ]
        self.register_outputs({"cluster": self.cluster_path, "bootstrap_servers": self.bootstrap_servers})

    def _bridge(
        self,
        args: KafkaArgs,
        topic_name: str,
        connect: gcp.managedkafka.ConnectCluster,
        kafka_topic: gcp.managedkafka.Topic,
    ) -> Bridge:
        slug = topic_name.replace(".", "-")
        child = args.project.children(self, "managedkafka", "pubsub")
        pubsub = gcp.pubsub.Topic(
            slug,
            name=f"{args.cell}-{slug}",
            kms_key_name=args.keys.key_id,
            message_retention_duration=BRIDGE_RETENTION,
            message_storage_policy={"allowed_persistence_regions": [args.region]},
            labels={**args.labels, "kafka-topic": slug},
            opts=after(child, args.keys.grants),
        )
        # Kafka Connect runs as the Managed Kafka service agent: it may publish to this topic only.
        publisher = gcp.pubsub.TopicIAMMember(
            f"{slug}-connect-publishes",
            topic=pubsub.name,
            role="roles/pubsub.publisher",
            member=args.project.agents["managedkafka"].email.apply(lambda email: f"serviceAccount:{email}"),
            opts=after(child, [args.project.agents["managedkafka"].created_by]),
        )
        gcp.managedkafka.Connector(
            f"{slug}-to-pubsub",
            connector_id=f"{slug}-to-pubsub",
            connect_cluster=connect.connect_cluster_id,
            location=args.region,
            configs={
                "connector.class": "com.google.pubsub.kafka.sink.CloudPubSubSinkConnector",
                "name": f"{slug}-to-pubsub",
                "tasks.max": "3",
                "topics": topic_name,
                "cps.project": args.project.project_id,
                "cps.topic": pubsub.name,
                # The event's bytes and its key (the tenant) pass through unchanged.
                "key.converter": "org.apache.kafka.connect.storage.StringConverter",
                "value.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
                "headers.publish": "true",
                # kafka.topic, kafka.partition and kafka.offset attributes: meter records the
                # Kafka position as the delivery, which aggregate's join matches its records with
                "metadata.publish": "true",
            },
            task_restart_policy={"minimum_backoff": "60s", "maximum_backoff": "1800s"},
            opts=after(child, [publisher, kafka_topic]),
        )
        return Bridge(topic_name, pubsub.id, pubsub.name)
