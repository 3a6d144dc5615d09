"""The cell's VPC network: one regional subnet for the Kafka cluster's endpoints, the Kafka Connect
workers and the functions' Direct VPC egress. No external IPs; Private Google Access on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.components.gcp.project import Project


@dataclass(frozen=True, slots=True)
class NetworkArgs:
    cell: str
    region: str
    cidr: str
    project: Project
    labels: Mapping[str, str]


class Network(pulumi.ComponentResource):
    network_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:gcp:Network", name, None, opts)
        child = args.project.children(self, "compute")
        network = gcp.compute.Network(
            "cell",
            name=f"{args.cell}-net",
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            description=f"{args.cell}: Kafka endpoints and function egress",
            opts=child,
        )
        subnet = gcp.compute.Subnetwork(
            "cell",
            name=f"{args.cell}-{args.region}",
            network=network.id,
            region=args.region,
            ip_cidr_range=args.cidr,
            private_ip_google_access=True,
            log_config={"aggregation_interval": "INTERVAL_10_MIN", "flow_sampling": 0.1},
            opts=child,
        )
        self.network_id = network.id
        self.subnet_id = subnet.id
        self.cost_items: list[dict[str, object]] = []
        self.register_outputs({"network_id": self.network_id, "subnet_id": self.subnet_id})
