"""Pulumi mocks that answer like AWS: realistic ids, names and ARNs for every resource the cell
creates, and a record of each resource's inputs (wire names, as policies see them)."""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi

ACCOUNT = "123456789012"


class CellMocks(pulumi.runtime.Mocks):
    def __init__(self, region: str) -> None:
        self.region = region
        self.resources: list[dict[str, Any]] = []

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/deployer",
                "id": ACCOUNT,
                "userId": "AIDAEXAMPLE",
            }
        if args.token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        return {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        self.resources.append({"type": args.typ, "name": args.name, "inputs": inputs})
        if not args.custom:
            return None, inputs
        resource_id, outputs = _outputs(args.typ, args.name, inputs, self.region)
        return resource_id, {**inputs, **outputs}


def _suffix(name: str, length: int = 8) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:length]


def _outputs(typ: str, name: str, inputs: dict[str, Any], region: str) -> tuple[str, dict[str, Any]]:
    arn = f"arn:aws:{{service}}:{region}:{ACCOUNT}:{{path}}"
    physical = inputs.get("name") or f"{name}-{_suffix(name, 7)}"
    match typ:
        case "aws:ec2/vpc:Vpc":
            return f"vpc-{_suffix(name, 17)}", {
                "arn": arn.format(service="ec2", path=f"vpc/vpc-{_suffix(name, 17)}")
            }
        case "aws:ec2/subnet:Subnet":
            return f"subnet-{_suffix(name, 17)}", {}
        case "aws:ec2/routeTable:RouteTable":
            return f"rtb-{_suffix(name, 17)}", {}
        case "aws:ec2/securityGroup:SecurityGroup":
            return f"sg-{_suffix(name, 17)}", {}
        case "aws:ec2/vpcEndpoint:VpcEndpoint":
            return f"vpce-{_suffix(name, 17)}", {}
        case "aws:kms/key:Key":
            key_id = (
                f"{_suffix(name + 'a')}-{_suffix(name, 4)}-{_suffix(name + 'b', 4)}-{_suffix(name + 'c', 12)}"
            )
            return key_id, {"keyId": key_id, "arn": arn.format(service="kms", path=f"key/{key_id}")}
        case "aws:dynamodb/table:Table":
            table = arn.format(service="dynamodb", path=f"table/{physical}")
            stream = f"{table}/stream/2026-11-28T17:42:00.000" if inputs.get("streamEnabled") else ""
            return physical, {
                "arn": table,
                "streamArn": stream,
                "streamLabel": "2026-11-28T17:42:00.000" if stream else "",
            }
        case "aws:msk/serverlessCluster:ServerlessCluster":
            uuid = f"{_suffix(name, 8)}-{_suffix(name + '1', 4)}-{_suffix(name + '2', 4)}-s1"
            cluster = arn.format(service="kafka", path=f"cluster/{inputs['clusterName']}/{uuid}")
            brokers = f"boot-{_suffix(name, 8)}.c1.kafka-serverless.{region}.amazonaws.com:9098"
            return cluster, {"arn": cluster, "clusterUuid": uuid, "bootstrapBrokersSaslIam": brokers}
        case "aws:lambda/function:Function":
            function = arn.format(service="lambda", path=f"function:{physical}")
            return physical, {
                "arn": function,
                "qualifiedArn": f"{function}:$LATEST",
                "version": "$LATEST",
                "invokeArn": f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/"
                f"{function}/invocations",
            }
        case "aws:lambda/layerVersion:LayerVersion":
            layer = arn.format(service="lambda", path=f"layer:{inputs['layerName']}")
            return f"{layer}:1", {"arn": f"{layer}:1", "layerArn": layer, "version": "1"}
        case "aws:iam/role:Role":
            return physical, {
                "arn": f"arn:aws:iam::{ACCOUNT}:role/{physical}",
                "uniqueId": f"AROA{_suffix(name, 17)}",
            }
        case "aws:cloudwatch/logGroup:LogGroup":
            return physical, {"arn": arn.format(service="logs", path=f"log-group:{physical}")}
        case "aws:sqs/queue:Queue":
            return (
                f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{physical}",
                {
                    "arn": arn.format(service="sqs", path=physical),
                    "url": f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{physical}",
                },
            )
        case "aws:s3/bucket:Bucket":
            bucket = f"{inputs.get('bucketPrefix', name)}{_suffix(name, 12)}"
            return bucket, {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"}
        case "aws:sns/topic:Topic":
            return arn.format(service="sns", path=physical), {"arn": arn.format(service="sns", path=physical)}
        case "aws:scheduler/schedule:Schedule":
            return f"default/{physical}", {
                "arn": arn.format(service="scheduler", path=f"schedule/default/{physical}")
            }
        case "aws:lambda/eventSourceMapping:EventSourceMapping":
            parts = (("", 8), ("1", 4), ("2", 4), ("3", 12))
            uuid = "-".join(_suffix(name + part, size) for part, size in parts)
            return uuid, {
                "uuid": uuid,
                "arn": arn.format(service="lambda", path=f"event-source-mapping:{uuid}"),
            }
        case "aws:cloudwatch/metricAlarm:MetricAlarm":
            return physical, {"arn": arn.format(service="cloudwatch", path=f"alarm:{physical}")}
        case "aws:cloudwatch/dashboard:Dashboard":
            return inputs["dashboardName"], {
                "dashboardArn": f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/{inputs['dashboardName']}"
            }
        case "aws:lambda/invocation:Invocation":
            return f"{_suffix(name, 32)}", {"result": '{"created": [], "repartitioned": [], "drift": []}'}
        case _:
            return f"{name}-{_suffix(name, 12)}", {}
