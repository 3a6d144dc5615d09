"""Each policy rule passes every stack's resources and rejects a resource that breaks it (the AWS
rules here; every cloud's rules pass every stack and are served by the pack here too)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.policies import aws as rules
from infra.policies.azure import AZURE_RULES
from infra.policies.gcp import GCP_RULES
from infra.policies.pack import rules as pack_rules
from tests.infra.builds import named, of_type

CLOUD_RULES = [*rules.AWS_RULES, *GCP_RULES, *AZURE_RULES]

_OPTS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def violations(
    policy: ResourceValidationPolicy | StackValidationPolicy, resources: list[dict[str, Any]]
) -> list[str]:
    found: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append(message)

    if isinstance(policy, StackValidationPolicy):
        policy.validate(
            StackValidationArgs(
                [
                    PolicyResource(
                        r["type"], r["inputs"], f"urn:{r['name']}", r["name"], _OPTS, None, None, [], {}
                    )
                    for r in resources
                ]
            ),
            report,
        )
    else:
        for r in resources:
            policy.validate(
                ResourceValidationArgs(r["type"], r["inputs"], f"urn:{r['name']}", r["name"], _OPTS, None),
                report,
            )
    return found


@pytest.mark.parametrize("policy", CLOUD_RULES, ids=lambda policy: policy.name)
def test_every_rule_passes_every_stack(policy: Any, previews: dict[str, Any]) -> None:
    for stack, build in previews.items():
        assert violations(policy, build["resources"]) == [], stack


def _broken(cell: dict[str, Any], token: str, name: str, change: Any) -> list[dict[str, Any]]:
    resources = copy.deepcopy(cell["resources"])
    [target] = [r for r in resources if r["type"] == token and r["name"] == name]
    change(target["inputs"])
    return resources


def test_encryption_rule_rejects_a_table_without_its_kms_key(cell: dict[str, Any]) -> None:
    bad = _broken(
        cell, "aws:dynamodb/table:Table", "usage", lambda i: i["serverSideEncryption"].pop("kmsKeyArn")
    )
    assert violations(rules.ENCRYPTION_AT_REST, bad) == [
        "table usage: encrypt with the cell's customer-managed KMS key"
    ]


def test_encryption_rule_rejects_kafka_without_iam_auth(cell: dict[str, Any]) -> None:
    bad = _broken(
        cell,
        "aws:msk/serverlessCluster:ServerlessCluster",
        "cluster",
        lambda i: i.update(clientAuthentication={"sasl": {"iam": {"enabled": False}}}),
    )
    assert len(violations(rules.ENCRYPTION_AT_REST, bad)) == 1


def test_durability_rule_rejects_a_ledger_without_pitr_or_deletion_protection(cell: dict[str, Any]) -> None:
    def strip(inputs: dict[str, Any]) -> None:
        inputs["pointInTimeRecovery"] = {"enabled": False}
        inputs["deletionProtectionEnabled"] = False

    assert (
        len(violations(rules.LEDGER_DURABILITY, _broken(cell, "aws:dynamodb/table:Table", "outcomes", strip)))
        == 2
    )


@pytest.mark.parametrize(
    "statement",
    [
        {
            "Effect": "Allow",
            "Action": "dynamodb:*",
            "Resource": "arn:aws:dynamodb:us-east-1:1:table/ml-use1-usage",
        },
        {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": ["dynamodb:PutItem"],
            "Resource": "arn:aws:dynamodb:us-east-1:1:table/*",
        },
        {
            "Effect": "Allow",
            "Action": ["kafka-cluster:WriteData"],
            "Resource": "arn:aws:kafka:us-east-1:1:topic/c/u/*",
        },
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
    ],
    ids=["service-wildcard", "resource-star", "any-table", "any-topic", "admin"],
)
def test_least_privilege_rule_rejects_wildcards_on_ledgers_and_topics(
    cell: dict[str, Any], statement: Any
) -> None:
    bad = _broken(
        cell,
        "aws:iam/rolePolicy:RolePolicy",
        "meter",
        lambda i: i.update(
            policy=json.dumps(
                {"Version": "2012-10-17", "Statement": [*json.loads(i["policy"])["Statement"], statement]}
            )
        ),
    )
    assert violations(rules.LEAST_PRIVILEGE, bad)


def test_tags_rule_rejects_a_function_without_its_owner(cell: dict[str, Any]) -> None:
    bad = _broken(cell, "aws:lambda/function:Function", "publish", lambda i: i["tags"].pop("owner"))
    assert violations(rules.REQUIRED_TAGS_POLICY, bad) == [
        "aws:lambda/function:Function publish: missing tags owner"
    ]


def test_retention_rule_rejects_a_log_group_kept_forever(cell: dict[str, Any]) -> None:
    bad = _broken(cell, "aws:cloudwatch/logGroup:LogGroup", "publish", lambda i: i.pop("retentionInDays"))
    assert len(violations(rules.LOG_RETENTION, bad)) == 1


def test_function_logs_rule_rejects_a_function_logging_to_an_unmanaged_group(cell: dict[str, Any]) -> None:
    bad = _broken(cell, "aws:lambda/function:Function", "meter", lambda i: i.pop("loggingConfig"))
    assert len(violations(rules.FUNCTION_LOGS, bad)) == 1


def test_bucket_rule_rejects_a_bucket_without_encryption_or_tls_policy(cell: dict[str, Any]) -> None:
    bucket = named(cell, "aws:s3/bucket:Bucket", "kafka-failures")
    assert violations(rules.BUCKETS, [bucket]) and len(violations(rules.BUCKETS, [bucket])) == 2
    assert of_type(cell, "aws:s3/bucketPolicy:BucketPolicy")


def test_policy_pack_gathers_every_clouds_rules_and_the_budget_rules_without_starting_a_server() -> None:
    names = [policy.name for policy in pack_rules()]
    assert set(names) >= {policy.name for policy in CLOUD_RULES} and len(names) > len(CLOUD_RULES)
