"""The cell's Event Hubs namespace: its Kafka endpoint (`<ns>.servicebus.windows.net:9093`) serves
the topology's topics, one event hub each, with the topology's partitions and its retention capped
at the tier's maximum (Standard: 7 days; the ledgers keep invoices and dead letters for longer).

No hub stands in for a table stream: the functions read `usage.events` only (meter in `$Default`,
aggregate in a consumer group of its own) and rate and close run on timers (see
`meterline.adapters.azure_functions`). Entra ID auth only (no SAS keys), TLS 1.2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native.eventhub as eventhub

from infra.config import EventHubs
from meterline.adapters.azure_functions import DEFAULT_CONSUMER_GROUP
from meterline.topology import Topic


@dataclass(frozen=True, slots=True)
class EventsArgs:
    cell: str
    namespace_name: str
    """Global (`<name>.servicebus.windows.net`): it carries the stack's name suffix."""
    location: str
    resource_group: pulumi.Input[str]
    sku: EventHubs
    topics: Sequence[Topic]
    consumer_groups: Sequence[tuple[str, str]]
    """(hub, consumer group) pairs the functions read in; `$Default` needs no resource."""
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
            namespace_name=args.namespace_name,
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
        hubs: dict[str, eventhub.EventHub] = {}
        for topic in args.topics:
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
            hubs[topic.name] = hub
            self.hub_ids[topic.name] = hub.id
            self.retention_hours[topic.name] = hours
        for hub_name, group in sorted(set(args.consumer_groups)):
            if hub_name not in hubs:
                raise ValueError(f"consumer group {group!r} reads {hub_name!r}, which is not a topic")
            if group == DEFAULT_CONSUMER_GROUP:
                continue
            eventhub.ConsumerGroup(
                f"{hub_name.replace('.', '-')}-{group}",
                consumer_group_name=group,
                event_hub_name=hubs[hub_name].name,
                namespace_name=namespace.name,
                resource_group_name=args.resource_group,
                opts=child,
            )
        self.cost_items: list[dict[str, Any]] = [
            {
                "kind": "eventhubs_namespace",
                "name": args.namespace_name,
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
                for topic in args.topics
            ),
        ]
        self.register_outputs({"namespace": self.namespace_id})
