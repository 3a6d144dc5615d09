"""Private network of a cell: no internet route and no NAT gateway.

DynamoDB and S3 are reached through free gateway endpoints. The MSK event source mapping's
pollers need Lambda and STS from inside the cluster's subnets, so those two are interface
endpoints (PrivateLink) rather than a NAT gateway: cheaper, and nothing in the cell can reach
the internet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.config import ExistingNetwork, NewNetwork

KAFKA_IAM_PORT = 9098
GATEWAY_SERVICES = ("dynamodb", "s3")
INTERFACE_SERVICES = ("lambda", "sts")


@dataclass(frozen=True, slots=True)
class NetworkArgs:
    cell: str
    region: str
    network: NewNetwork | ExistingNetwork
    tags: Mapping[str, str]


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    subnet_ids: list[pulumi.Output[str]]
    kafka_security_group_id: pulumi.Output[str]
    functions_security_group_id: pulumi.Output[str]
    cost_items: list[dict[str, Any]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:aws:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        if isinstance(args.network, NewNetwork):
            vpc = aws.ec2.Vpc(
                "vpc",
                cidr_block=args.network.cidr,
                enable_dns_support=True,
                enable_dns_hostnames=True,
                tags={**tags, "Name": f"{args.cell}-vpc"},
                opts=child,
            )
            self.vpc_id = vpc.id
            blocks = ipaddress.ip_network(args.network.cidr).subnets(
                new_prefix=ipaddress.ip_network(args.network.cidr).prefixlen + 4
            )
            subnets = [
                aws.ec2.Subnet(
                    f"private-{zone}",
                    vpc_id=vpc.id,
                    cidr_block=str(block),
                    availability_zone=zone,
                    map_public_ip_on_launch=False,
                    tags={**tags, "Name": f"{args.cell}-private-{zone}"},
                    opts=child,
                )
                for zone, block in zip(args.network.availability_zones, blocks, strict=False)
            ]
            routes = aws.ec2.RouteTable(
                "private", vpc_id=vpc.id, tags={**tags, "Name": f"{args.cell}-private"}, opts=child
            )
            for zone, subnet in zip(args.network.availability_zones, subnets, strict=True):
                aws.ec2.RouteTableAssociation(
                    f"private-{zone}", subnet_id=subnet.id, route_table_id=routes.id, opts=child
                )
            self.subnet_ids = [subnet.id for subnet in subnets]
            route_table_ids: list[pulumi.Input[str]] = [routes.id]
        else:
            self.vpc_id = pulumi.Output.from_input(args.network.vpc_id)
            self.subnet_ids = [pulumi.Output.from_input(subnet) for subnet in args.network.subnet_ids]
            route_table_ids = list(args.network.route_table_ids)

        functions_sg = aws.ec2.SecurityGroup(
            "functions",
            vpc_id=self.vpc_id,
            description="meterline functions: egress to Kafka and endpoints",
            egress=[
                {
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": ["0.0.0.0/0"],
                    "description": "AWS endpoints (no internet route exists)",
                },
                {
                    "protocol": "tcp",
                    "from_port": KAFKA_IAM_PORT,
                    "to_port": KAFKA_IAM_PORT,
                    "cidr_blocks": ["0.0.0.0/0"],
                    "description": "MSK Serverless, IAM auth over TLS",
                },
            ],
            tags={**tags, "Name": f"{args.cell}-functions"},
            opts=child,
        )
        kafka_sg = aws.ec2.SecurityGroup(
            "kafka",
            vpc_id=self.vpc_id,
            description="MSK Serverless and its Lambda event source pollers",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": KAFKA_IAM_PORT,
                    "to_port": KAFKA_IAM_PORT,
                    "security_groups": [functions_sg.id],
                    "description": "functions",
                },
                {
                    "protocol": "-1",
                    "from_port": 0,
                    "to_port": 0,
                    "self": True,
                    "description": "event source mapping pollers share this group",
                },
            ],
            egress=[
                {
                    "protocol": "-1",
                    "from_port": 0,
                    "to_port": 0,
                    "cidr_blocks": ["0.0.0.0/0"],
                    "description": "pollers reach Lambda and STS endpoints",
                }
            ],
            tags={**tags, "Name": f"{args.cell}-kafka"},
            opts=child,
        )
        endpoints_sg = aws.ec2.SecurityGroup(
            "endpoints",
            vpc_id=self.vpc_id,
            description="interface endpoints: HTTPS from the cell",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "security_groups": [functions_sg.id, kafka_sg.id],
                    "description": "cell",
                }
            ],
            tags={**tags, "Name": f"{args.cell}-endpoints"},
            opts=child,
        )
        for service in GATEWAY_SERVICES:
            aws.ec2.VpcEndpoint(
                f"{service}-gateway",
                vpc_id=self.vpc_id,
                vpc_endpoint_type="Gateway",
                service_name=f"com.amazonaws.{args.region}.{service}",
                route_table_ids=route_table_ids,
                tags={**tags, "Name": f"{args.cell}-{service}"},
                opts=child,
            )
        for service in INTERFACE_SERVICES:
            aws.ec2.VpcEndpoint(
                f"{service}-interface",
                vpc_id=self.vpc_id,
                vpc_endpoint_type="Interface",
                service_name=f"com.amazonaws.{args.region}.{service}",
                private_dns_enabled=True,
                subnet_ids=self.subnet_ids,
                security_group_ids=[endpoints_sg.id],
                tags={**tags, "Name": f"{args.cell}-{service}"},
                opts=child,
            )
        self.kafka_security_group_id = kafka_sg.id
        self.functions_security_group_id = functions_sg.id
        zones = len(self.subnet_ids)
        self.cost_items = [
            {"kind": "nat_gateway", "count": 0},
            {
                "kind": "vpc_endpoint",
                "type": "Gateway",
                "count": len(GATEWAY_SERVICES),
                "services": list(GATEWAY_SERVICES),
            },
            {
                "kind": "vpc_endpoint",
                "type": "Interface",
                "count": len(INTERFACE_SERVICES),
                "services": list(INTERFACE_SERVICES),
                "availability_zones": zones,
            },
        ]
        self.register_outputs({"vpc_id": self.vpc_id, "subnet_ids": self.subnet_ids})
