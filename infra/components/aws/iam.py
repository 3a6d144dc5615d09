"""Least-privilege policy documents for the cell's functions, derived from what the topology says
each function reads, writes, consumes and publishes. Values may be Pulumi outputs; the caller
serialises the document with `pulumi.Output.json_dumps`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

TABLE_READ = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem")
TABLE_WRITE = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
)
STREAM_READ = (
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
)
# What a role needs of a table's customer-managed key to use the table (as the CDK grants it): DynamoDB
# decrypts for every read, stream reads included, and encrypts for every write, on the caller's behalf.
LEDGER_KEY_READ = ("kms:Decrypt", "kms:DescribeKey")
LEDGER_KEY_WRITE = (*LEDGER_KEY_READ, "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*")
# Describe* calls of EC2 have no resource-level permissions: the one statement that needs "*".
VPC_NETWORK_INTERFACES = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeVpcs",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)

QUEUE_CONSUME = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
)

Arn = pulumi.Input[str]


@dataclass
class FunctionAccess:
    log_group_arn: Arn
    reads: list[Arn] = field(default_factory=list)
    writes: list[Arn] = field(default_factory=list)
    stream: Arn | None = None
    kafka_cluster: Arn | None = None
    consumes: tuple[Arn, Arn] | None = None
    """(topic ARN, consumer group ARN) of a Kafka trigger."""
    publishes: list[Arn] = field(default_factory=list)
    administers_topics: list[Arn] = field(default_factory=list)
    failure_queue: Arn | None = None
    failure_bucket: Arn | None = None
    key: Arn | None = None
    """The cell's key: the tables', the log group's and the failure destinations' encryption key."""
    region: str = ""
    """Where the tables are: the key is granted for use through DynamoDB in this region only."""
    in_vpc: bool = True
    """A function in the cell's VPC manages its network interfaces."""
    assumes: list[Arn] = field(default_factory=list)
    """Roles it works as (publish: the home's statements role for this cell)."""
    notifies: list[Arn] = field(default_factory=list)
    """SNS topics it publishes to (the home's alerts and invoices)."""
    queue: Arn | None = None
    """The SQS queue that triggers it (the home's ingest: statements' object-created notifications)."""
    reads_objects: list[Arn] = field(default_factory=list)
    """S3 object ARNs (patterns) it reads."""
    objects_key: Arn | None = None
    """The key the objects it reads, and its queue's messages, are encrypted with."""


def function_policy(access: FunctionAccess) -> dict[str, Any]:
    statements: list[dict[str, Any]] = [
        _allow(
            "Logs",
            ("logs:CreateLogStream", "logs:PutLogEvents"),
            [pulumi.Output.concat(access.log_group_arn, ":*")],
        ),
    ]
    if access.in_vpc:
        statements.append(_allow("VpcNetworkInterfaces", VPC_NETWORK_INTERFACES, ["*"]))
    if access.reads:
        statements.append(_allow("LedgerRead", TABLE_READ, access.reads))
    if access.writes:
        statements.append(_allow("LedgerWrite", TABLE_WRITE, access.writes))
    if access.stream is not None:
        statements.append(_allow("LedgerStream", STREAM_READ, [access.stream]))
    if access.key is not None and (access.reads or access.writes or access.stream is not None):
        key_actions = LEDGER_KEY_WRITE if access.writes else LEDGER_KEY_READ
        statement = _allow("LedgerKey", key_actions, [access.key])
        statement["Condition"] = {
            "StringEquals": {"kms:ViaService": f"dynamodb.{access.region}.amazonaws.com"}
        }
        statements.append(statement)
    if access.kafka_cluster is not None:
        statements.extend(_kafka(access))
    if access.assumes:
        statements.append(_allow("HomeStatementsRole", ("sts:AssumeRole",), access.assumes))
    if access.notifies:
        statements.append(_allow("Notify", ("sns:Publish",), access.notifies))
    if access.queue is not None:
        statements.append(_allow("TriggerQueue", QUEUE_CONSUME, [access.queue]))
    if access.reads_objects:
        statements.append(_allow("ReadObjects", ("s3:GetObject",), access.reads_objects))
    if access.objects_key is not None:
        statements.append(_allow("ObjectsKey", ("kms:Decrypt",), [access.objects_key]))
    if access.notifies and access.key is not None:
        statements.append(_allow("NotifyKey", ("kms:GenerateDataKey", "kms:Decrypt"), [access.key]))
    if access.failure_queue is not None:
        statements.append(_allow("FailureDestination", ("sqs:SendMessage",), [access.failure_queue]))
    if access.failure_bucket is not None:
        statements.append(
            _allow(
                "FailureDestination",
                ("s3:PutObject", "s3:ListBucket"),
                [access.failure_bucket, pulumi.Output.concat(access.failure_bucket, "/*")],
            )
        )
    if access.key is not None and (access.failure_queue is not None or access.failure_bucket is not None):
        statements.append(
            _allow("FailureDestinationKey", ("kms:GenerateDataKey", "kms:Decrypt"), [access.key])
        )
    return {"Version": "2012-10-17", "Statement": statements}


def _kafka(access: FunctionAccess) -> list[dict[str, Any]]:
    cluster = access.kafka_cluster
    assert cluster is not None
    statements = [
        _allow(
            "KafkaConnect",
            ("kafka-cluster:Connect", "kafka-cluster:DescribeClusterDynamicConfiguration"),
            [cluster],
        )
    ]
    if access.consumes is not None:
        topic, group = access.consumes
        statements += [
            _allow("KafkaTrigger", ("kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers"), [cluster]),
            _allow("KafkaConsume", ("kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"), [topic]),
            _allow("KafkaGroup", ("kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"), [group]),
        ]
    if access.publishes:
        statements += [
            _allow(
                "KafkaPublish", ("kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"), access.publishes
            ),
            _allow("KafkaIdempotentProducer", ("kafka-cluster:WriteDataIdempotently",), [cluster]),
        ]
    if access.administers_topics:
        statements.append(
            _allow(
                "KafkaTopicAdmin",
                (
                    "kafka-cluster:CreateTopic",
                    "kafka-cluster:DescribeTopic",
                    "kafka-cluster:AlterTopic",
                    "kafka-cluster:DescribeTopicDynamicConfiguration",
                    "kafka-cluster:AlterTopicDynamicConfiguration",
                ),
                access.administers_topics,
            )
        )
    return statements


def _allow(sid: str, actions: Sequence[str], resources: Sequence[Arn]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(set(actions)), "Resource": list(resources)}


def assume_role_policy(service: str, account: pulumi.Input[str] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    if account is not None:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account}}
    return {"Version": "2012-10-17", "Statement": [statement]}
