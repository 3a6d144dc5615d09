"""What the AWS stacks' buckets and queues share. A bucket (the cell's Kafka failures, the home's
statements): public access blocked, KMS encryption with S3 Bucket Keys. A queue (failures,
statement notifications and their redrive): encrypted, messages kept 14 days. Both: a policy that
refuses all but TLS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws

QUEUE_RETENTION_SECONDS = 14 * 24 * 3600


def private_and_encrypted(
    name: str, bucket_id: pulumi.Input[str], key_arn: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> None:
    """No public access to the bucket, and its objects encrypted with `key_arn` (Bucket Keys on)."""
    aws.s3.BucketServerSideEncryptionConfiguration(
        name,
        bucket=bucket_id,
        rules=[
            {
                "apply_server_side_encryption_by_default": {
                    "sse_algorithm": "aws:kms",
                    "kms_master_key_id": key_arn,
                },
                "bucket_key_enabled": True,
            }
        ],
        opts=opts,
    )
    aws.s3.BucketPublicAccessBlock(
        name,
        bucket=bucket_id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )


def encrypted_queue(
    parent: pulumi.Resource,
    name: str,
    physical: str,
    key_arn: pulumi.Input[str],
    tags: Mapping[str, str],
    **settings: Any,
) -> aws.sqs.Queue:
    """The queue `physical`, encrypted with `key_arn`, with any further `aws.sqs.Queue` `settings`."""
    return aws.sqs.Queue(
        name,
        name=physical,
        kms_master_key_id=key_arn,
        message_retention_seconds=QUEUE_RETENTION_SECONDS,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
        **settings,
    )


def deny_insecure_transport(actions: str, resources: Any) -> dict[str, Any]:
    """The policy statement that refuses `actions` on `resources` over anything but TLS."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": actions,
        "Resource": resources,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def tls_only(actions: str, resources: list[pulumi.Input[str]]) -> dict[str, Any]:
    """A resource policy of that one statement."""
    return {"Version": "2012-10-17", "Statement": [deny_insecure_transport(actions, resources)]}
