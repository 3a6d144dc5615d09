"""The cell's DynamoDB ledgers, from `meterline.topology.TABLES`, and the cell's KMS key.

Every table is on-demand, point-in-time recoverable, deletion-protected and encrypted with the
cell's customer-managed key; streams exactly where the topology says, no TTL (nothing in the ledger
expires). Tables and key are kept on destroy (infra/components/keep.py); the tables are named
`<table_prefix><table>`, the prefix carrying the stack's name suffix, so a new incarnation does not
collide with retained tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.keep import kept
from meterline.topology import Table


@dataclass(frozen=True, slots=True)
class LedgersArgs:
    cell: str
    region: str
    tables: Sequence[Table]
    tags: Mapping[str, str]
    table_prefix: str
    """The functions' METERLINE_TABLE_PREFIX: table `usage` is `<table_prefix>usage`."""


@dataclass(frozen=True, slots=True)
class Ledger:
    definition: Table
    name: pulumi.Output[str]
    arn: pulumi.Output[str]
    stream_arn: pulumi.Output[str] | None


class Ledgers(pulumi.ComponentResource):
    table_prefix: str
    key_arn: pulumi.Output[str]
    tables: dict[str, Ledger]
    cost_items: list[dict[str, Any]]

    def __init__(self, name: str, args: LedgersArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:aws:Ledgers", name, None, opts)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        key = kept_key(
            self,
            "cell",
            args.cell,
            f"{args.cell}: ledgers, logs, dead letters and alarms at rest",
            key_policy(account, args.region),
            args.tags,
        )
        self.key_arn = key.arn
        self.table_prefix = args.table_prefix
        self.tables = {}
        for table in args.tables:
            attributes = [{"name": table.partition_key, "type": "S"}]
            if table.sort_key:
                attributes.append({"name": table.sort_key, "type": "S"})
            resource = aws.dynamodb.Table(
                table.name,
                name=f"{args.table_prefix}{table.name}",
                billing_mode="PAY_PER_REQUEST",
                hash_key=table.partition_key,
                range_key=table.sort_key,
                attributes=attributes,
                stream_enabled=table.stream is not None,
                stream_view_type=table.stream.value if table.stream else None,
                point_in_time_recovery={"enabled": True},
                server_side_encryption={"enabled": True, "kms_key_arn": key.arn},
                deletion_protection_enabled=True,
                tags={**args.tags, "purpose": table.purpose[:250]},
                opts=kept(self),
            )
            self.tables[table.name] = Ledger(
                table, resource.name, resource.arn, resource.stream_arn if table.stream else None
            )
        self.cost_items = [{"kind": "kms_key", "count": 1}] + [
            {
                "kind": "dynamodb_table",
                "name": f"{args.table_prefix}{table.name}",
                "table": table.name,
                "billing": "on_demand",
                "pitr": True,
                "stream": table.stream is not None,
            }
            for table in args.tables
        ]
        self.register_outputs(
            {"key_arn": self.key_arn, "tables": {name: ledger.arn for name, ledger in self.tables.items()}}
        )


def kept_key(
    parent: pulumi.Resource,
    name: str,
    alias: str,
    description: str,
    policy: Mapping[str, Any],
    tags: Mapping[str, str],
) -> aws.kms.Key:
    """A rotated customer-managed key, aliased `alias/<alias>`, kept on destroy like what it encrypts."""
    key = aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=pulumi.Output.json_dumps(policy),
        tags=dict(tags),
        opts=kept(parent),
    )
    aws.kms.Alias(
        name, name=f"alias/{alias}", target_key_id=key.key_id, opts=pulumi.ResourceOptions(parent=parent)
    )
    return key


def key_policy(account: pulumi.Input[str], region: str) -> dict[str, Any]:
    """The account administers the key (IAM policies grant its use); CloudWatch Logs and alarms
    may use it for the cell's log groups and its alarm topic."""
    root = pulumi.Output.concat("arn:aws:iam::", account, ":root")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchLogs",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": [
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                "Resource": "*",
                "Condition": {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": pulumi.Output.concat(
                            "arn:aws:logs:", region, ":", account, ":log-group:*"
                        )
                    }
                },
            },
            {
                "Sid": "CloudWatchAlarmsPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
            },
        ],
    }
