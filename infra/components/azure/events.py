"""The cell's Event Hubs namespace: its Kafka endpoint (`<ns>.servicebus.windows.net:9093`) serves
the topology's topics, one event hub each, with the topology's partitions and its retention capped
at the tier's maximum (Standard: 7 days; the ledgers keep invoices and dead letters for longer).

Two more hubs carry ledger changes, standing in for DynamoDB streams (Azure Tables have no change
feed): the meter publishes each accepted usage record to `ledger-usage` after its conditional
create, the aggregator each partial state to `ledger-aggregates`. Entra ID auth only (no SAS keys),
TLS 1.2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native.eventhub as eventhub

from infra.config import EventHubs
from meterline.topology import USAGE_EVENTS, Topic

CHANGE_HUBS = {"usage": Topic("ledger-usage", USAGE_EVENTS.partitions, 24, "accepted usage records")}
CHANGE_HUBS["aggregates"] = Topic("ledger-aggregates", 3, 24, "partial aggregate states")


@dataclass(frozen=True, slots=True)
class EventsArgs:
    cell: str
    location: str
    resource_group: pulumi.Input[str]
    sku: EventHubs
    topics: Sequence[Topic]
    consumers: Mapping[str, str]
    """Consumer group (a job) → the hub it reads."""
    tags: Mapping[str, str]


class Events(pulumi.ComponentResource):
    namespace_id: pulumi.Output[str]
    namespace_name: pulumi.Output[str]
    kafka_bootstrap: pulumi.Output[str]
    hub_ids: dict[str, pulumi.Output[str]]
    retention_hours: dict[str, int]

    def __init__(self, name: str, args: EventsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:azure:Events", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace = eventhub.Namespace(
            "namespace",
            namespace_name=f"{args.cell}-events",
            resource_group_name=args.resource_group,
            location=args.location,
            sku={"name": args.sku.sku, "tier": args.sku.sku, "capacity": args.sku.capacity},
            is_auto_inflate_enabled=args.sku.maximum_throughput_units > args.sku.capacity,
            maximum_throughput_units=args.sku.maximum_throughput_units
            if args.sku.maximum_throughput_units > args.sku.capacity
            else None,
            disable_local_auth=True,
            minimum_tls_version="1.2",
            zone_redundant=True,
            tags=dict(args.tags),
            opts=child,
        )
        self.namespace_id = namespace.id
        self.namespace_name = namespace.name
        self.kafka_bootstrap = pulumi.Output.concat(namespace.name, ".servicebus.windows.net:9093")
        self.hub_ids = {}
        self.retention_hours = {}
        for topic in [*args.topics, *CHANGE_HUBS.values()]:
            hours = min(topic.retention_hours, args.sku.max_retention_hours)
            hub = eventhub.EventHub(
                topic.name.replace(".", "-"),
                event_hub_name=topic.name,
                namespace_name=namespace.name,
                resource_group_name=args.resource_group,
                partition_count=topic.partitions,
                retention_description={"cleanup_policy": "Delete", "retention_time_in_hours": hours},
                opts=child,
            )
            self.hub_ids[topic.name] = hub.id
            self.retention_hours[topic.name] = hours
        for group, hub_name in args.consumers.items():
            eventhub.ConsumerGroup(
                f"{group}-group",
                consumer_group_name=group,
                event_hub_name=hub_name,
                namespace_name=namespace.name,
                resource_group_name=args.resource_group,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[]),
            )
        self.cost_items: list[dict[str, Any]] = [
            {
                "kind": "eventhubs_namespace",
                "name": f"{args.cell}-events",
                "sku": args.sku.sku,
                "capacity": args.sku.capacity,
                "maximum_throughput_units": args.sku.maximum_throughput_units,
            },
            *(
                {
                    "kind": "eventhub",
                    "topic": topic.name,
                    "partitions": topic.partitions,
                    "retention_hours": self.retention_hours[topic.name],
                }
                for topic in [*args.topics, *CHANGE_HUBS.values()]
            ),
        ]
        self.register_outputs({"namespace": self.namespace_id})
