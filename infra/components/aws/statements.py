"""The billing home's statements bucket: where every cell writes its statements (SPEC §8), and the
queue that tells `ingest` about each new one.

- Encrypted with a key of its own (S3 Bucket Keys on), so a cell's role is granted that key and
  never the ledgers' key; kept on destroy with the key, like the ledgers: the bucket is the record
  of what each cell sent.
- Versioned, public access blocked, ACLs off, TLS only, and create-only under `statements/`: the
  bucket policy refuses a PutObject without `If-None-Match` (the `s3:if-none-match` condition key),
  so no writer, a cell's or the home's, can overwrite a statement.
- Lifecycle: a statement is kept `STATEMENT_RETENTION_DAYS` (past the amendment window of a year),
  noncurrent versions (only delete markers can make them) 30 days, incomplete uploads a day.
- Object-created notifications under `statements/` go to an encrypted SQS queue (a redrive queue
  after `INGEST_RECEIVES` receives), which `ingest` reads in batches with partial batch responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.aws.ledgers import kept_key
from infra.components.aws.storage import deny_insecure_transport, encrypted_queue, private_and_encrypted
from infra.components.keep import kept
from meterline.topology import INGEST, STATEMENTS_PREFIX

STATEMENT_RETENTION_DAYS = 400
NONCURRENT_RETENTION_DAYS = 30
INGEST_RECEIVES = 5
"""Receives of one notification before it goes to the redrive queue (each a failed ingest)."""


@dataclass(frozen=True, slots=True)
class StatementsArgs:
    home: str
    """The home's short name (`ml-home-use1`), the start of its resources' names."""
    region: str
    bucket_name: str
    cells: int
    """How many cells write here: what the cost model counts statements by."""
    tags: Mapping[str, str]


class Statements(pulumi.ComponentResource):
    key_arn: pulumi.Output[str]
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    queue_arn: pulumi.Output[str]
    queue_name: pulumi.Output[str]
    redrive_queue_name: pulumi.Output[str]
    cost_items: list[dict[str, Any]]

    def __init__(self, name: str, args: StatementsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:aws:Statements", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        key = kept_key(
            self,
            "statements",
            f"{args.home}-statements",
            f"{args.home}: the cells' statements at rest, and their notifications",
            statements_key_policy(account),
            tags,
        )
        bucket = aws.s3.Bucket(
            "statements", bucket=args.bucket_name, force_destroy=False, tags=tags, opts=kept(self)
        )
        aws.s3.BucketOwnershipControls(
            "statements", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
        )
        aws.s3.BucketVersioning(
            "statements", bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=child
        )
        private_and_encrypted("statements", bucket.id, key.arn, child)
        aws.s3.BucketLifecycleConfiguration(
            "statements",
            bucket=bucket.id,
            rules=[
                {
                    "id": "statements",
                    "status": "Enabled",
                    "filter": {"prefix": STATEMENTS_PREFIX},
                    "expiration": {"days": STATEMENT_RETENTION_DAYS},
                    "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_RETENTION_DAYS},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
                }
            ],
            opts=child,
        )
        aws.s3.BucketPolicy(
            "statements",
            bucket=bucket.id,
            policy=pulumi.Output.json_dumps(bucket_policy(bucket.arn)),
            opts=child,
        )
        redrive = encrypted_queue(
            self, "statements-redrive", f"{args.home}-statements-redrive", key.arn, tags
        )
        queue = encrypted_queue(
            self,
            "statements",
            f"{args.home}-statements",
            key.arn,
            tags,
            visibility_timeout_seconds=6 * INGEST.timeout_seconds,  # as Lambda advises for an SQS trigger
            redrive_policy=pulumi.Output.json_dumps(
                {"deadLetterTargetArn": redrive.arn, "maxReceiveCount": INGEST_RECEIVES}
            ),
        )
        queue_policy = aws.sqs.QueuePolicy(
            "statements",
            queue_url=queue.url,
            policy=pulumi.Output.json_dumps(notifications_policy(queue.arn, bucket.arn, account)),
            opts=child,
        )
        aws.s3.BucketNotification(
            "statements",
            bucket=bucket.id,
            queues=[
                {"queue_arn": queue.arn, "events": ["s3:ObjectCreated:*"], "filter_prefix": STATEMENTS_PREFIX}
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[queue_policy]),
        )
        self.key_arn = key.arn
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.queue_arn = queue.arn
        self.queue_name = queue.name
        self.redrive_queue_name = redrive.name
        self.cost_items = [
            {"kind": "kms_key", "count": 1},
            {
                "kind": "statements_bucket",
                "name": args.bucket_name,
                "cells": args.cells,
                "retention_days": STATEMENT_RETENTION_DAYS,
            },
            {"kind": "sqs_queue", "name": f"{args.home}-statements", "purpose": "statement notifications"},
            {"kind": "sqs_queue", "name": f"{args.home}-statements-redrive", "purpose": "dead letters"},
        ]
        self.register_outputs({"bucket": self.bucket_name, "queue": self.queue_arn})


def object_arn(bucket_arn: pulumi.Input[str], prefix: str) -> pulumi.Output[str]:
    """The ARN pattern of every object under `prefix` (which ends in `/`)."""
    return pulumi.Output.concat(bucket_arn, "/", prefix, "*")


def bucket_policy(bucket_arn: pulumi.Input[str]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            deny_insecure_transport("s3:*", [bucket_arn, pulumi.Output.concat(bucket_arn, "/*")]),
            {
                # create-only: a statement is never overwritten, whoever holds s3:PutObject
                "Sid": "DenyOverwritingStatements",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": object_arn(bucket_arn, STATEMENTS_PREFIX),
                "Condition": {"Null": {"s3:if-none-match": "true"}},
            },
        ],
    }


def notifications_policy(
    queue_arn: pulumi.Input[str], bucket_arn: pulumi.Input[str], account: pulumi.Input[str]
) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StatementsBucketNotifies",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {
                    "ArnEquals": {"aws:SourceArn": bucket_arn},
                    "StringEquals": {"aws:SourceAccount": account},
                },
            },
            deny_insecure_transport("sqs:*", queue_arn),
        ],
    }


def statements_key_policy(account: pulumi.Input[str]) -> dict[str, Any]:
    """The account administers the key (IAM policies grant its use: the cells' roles, ingest); S3
    encrypts the notifications it sends to the key's queue."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": pulumi.Output.concat("arn:aws:iam::", account, ":root")},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "S3Notifications",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account}},
            },
        ],
    }
