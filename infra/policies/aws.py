"""Policy rules for an AWS cell, importable without starting a policy server (see pack.py).

Each rule reads resource inputs as the engine gives them (wire names: `pointInTimeRecovery`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.policies.common import REQUIRED_TAGS, mandatory, missing_tags

TAGGABLE = frozenset(
    {
        "aws:ec2/vpc:Vpc",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        "aws:kms/key:Key",
        "aws:dynamodb/table:Table",
        "aws:msk/serverlessCluster:ServerlessCluster",
        "aws:lambda/function:Function",
        "aws:iam/role:Role",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:sqs/queue:Queue",
        "aws:s3/bucket:Bucket",
        "aws:sns/topic:Topic",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
    }
)
_POLICY_DOCUMENTS = {"aws:iam/rolePolicy:RolePolicy": "policy", "aws:iam/policy:Policy": "policy"}
_GUARDED_SERVICES = ("dynamodb", "kafka-cluster", "kafka")


def _violation(report: ReportViolation, message: str) -> None:
    report(message, None)


def _encryption_at_rest(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props = args.props
    match args.resource_type:
        case "aws:dynamodb/table:Table":
            sse = props.get("serverSideEncryption") or {}
            if not sse.get("enabled") or not sse.get("kmsKeyArn"):
                _violation(report, f"table {args.name}: encrypt with the cell's customer-managed KMS key")
        case "aws:sqs/queue:Queue":
            if not props.get("kmsMasterKeyId") and not props.get("sqsManagedSseEnabled"):
                _violation(report, f"queue {args.name}: server-side encryption is off")
        case "aws:sns/topic:Topic":
            if not props.get("kmsMasterKeyId"):
                _violation(report, f"topic {args.name}: server-side encryption is off")
        case "aws:cloudwatch/logGroup:LogGroup":
            if not props.get("kmsKeyId"):
                _violation(report, f"log group {args.name}: encrypt with the cell's KMS key")
        case "aws:kms/key:Key":
            if not props.get("enableKeyRotation"):
                _violation(report, f"key {args.name}: key rotation is off")
        case "aws:msk/serverlessCluster:ServerlessCluster":
            iam = ((props.get("clientAuthentication") or {}).get("sasl") or {}).get("iam") or {}
            if not iam.get("enabled"):
                _violation(report, f"cluster {args.name}: clients must use IAM authentication over TLS")


def _ledger_durability(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "aws:dynamodb/table:Table":
        return
    if not (args.props.get("pointInTimeRecovery") or {}).get("enabled"):
        _violation(report, f"table {args.name}: point-in-time recovery is off")
    if not args.props.get("deletionProtectionEnabled"):
        _violation(report, f"table {args.name}: deletion protection is off")


def _least_privilege(args: ResourceValidationArgs, report: ReportViolation) -> None:
    field = _POLICY_DOCUMENTS.get(args.resource_type)
    if field is None:
        return
    document = args.props.get(field)
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            _violation(report, f"policy {args.name}: not JSON")
            return
    for problem in wildcard_problems(document or {}):
        _violation(report, f"policy {args.name}: {problem}")


def wildcard_problems(document: Mapping[str, Any]) -> Iterable[str]:
    """Wildcards that reach ledger tables or Kafka topics: `*` or `service:*` actions, or an
    Allow on them whose resource is `*` or names no single table, cluster, topic or group."""
    statements = document.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if statement.get("Effect") != "Allow":
            continue
        actions = _as_list(statement.get("Action"))
        guarded = [action for action in actions if action == "*" or action.split(":")[0] in _GUARDED_SERVICES]
        if not guarded:
            continue
        for action in guarded:
            if action == "*" or action.endswith(":*"):
                yield f"wildcard action {action}"
        for resource in _as_list(statement.get("Resource")):
            if not _names_one_resource(resource):
                yield f"{', '.join(guarded)} on wildcard resource {resource}"


def _names_one_resource(arn: str) -> bool:
    if arn == "*" or not arn.startswith("arn:"):
        return False
    path = arn.split(":", 5)[5] if arn.count(":") >= 5 else ""
    head, _, rest = path.partition("/")
    if head == "table":  # table/NAME[/stream/LABEL|/index/NAME|/stream/*]
        name = rest.split("/")[0]
        return bool(name) and "*" not in name
    if head in ("cluster", "topic", "group"):  # cluster/NAME/UUID[/TOPIC-OR-GROUP]
        return "*" not in path and len(rest.split("/")) >= (2 if head == "cluster" else 3)
    return "*" not in path


def _as_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value] if isinstance(value, list) else []


def _required_tags(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in TAGGABLE:
        return
    missing = missing_tags(args.props.get("tags"))
    if missing:
        _violation(report, f"{args.resource_type} {args.name}: missing tags {', '.join(missing)}")


def _log_retention(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == "aws:cloudwatch/logGroup:LogGroup" and not args.props.get("retentionInDays"):
        _violation(report, f"log group {args.name}: retention is not set (logs would be kept forever)")


def _functions_log_to_managed_groups(args: StackValidationArgs, report: ReportViolation) -> None:
    groups = {
        resource.props.get("name")
        for resource in args.resources
        if resource.resource_type == "aws:cloudwatch/logGroup:LogGroup"
    }
    for resource in args.resources:
        if resource.resource_type == "aws:lambda/function:Function":
            group = (resource.props.get("loggingConfig") or {}).get("logGroup")
            if group not in groups:
                report(
                    f"function {resource.name}: logs to {group or 'an unmanaged group'}, not a group with "
                    f"retention in this stack",
                    resource.urn,
                )


def _buckets_encrypted_and_tls_only(args: StackValidationArgs, report: ReportViolation) -> None:
    def covering(token: str, must_mention: str = "") -> set[str]:
        """Buckets (by URN or logical name) that a `token` resource configures."""
        covered: set[str] = set()
        for resource in args.resources:
            if resource.resource_type == token and must_mention in json.dumps(resource.props, default=str):
                covered.add(resource.name)
                covered.update(
                    dependency.urn for dependency in resource.property_dependencies.get("bucket", [])
                )
        return covered

    encrypted = covering(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "aws:kms"
    )
    tls_only = covering("aws:s3/bucketPolicy:BucketPolicy", "aws:SecureTransport")
    for resource in args.resources:
        if resource.resource_type != "aws:s3/bucket:Bucket":
            continue
        if not {resource.urn, resource.name} & encrypted:
            report(f"bucket {resource.name}: no KMS server-side encryption configuration", resource.urn)
        if not {resource.urn, resource.name} & tls_only:
            report(f"bucket {resource.name}: no policy denying requests without TLS", resource.urn)


ENCRYPTION_AT_REST = mandatory(
    "encryption-at-rest",
    "Ledgers, queues, topics, logs and keys are encrypted; Kafka clients use IAM over TLS.",
    _encryption_at_rest,
)
LEDGER_DURABILITY = mandatory(
    "ledger-durability", "Ledger tables keep PITR and deletion protection.", _ledger_durability
)
LEAST_PRIVILEGE = mandatory(
    "no-wildcards-on-ledgers-or-topics",
    "IAM never grants wildcard actions or resources on ledger tables or Kafka topics.",
    _least_privilege,
)
REQUIRED_TAGS_POLICY = mandatory(
    "required-tags", f"Taggable resources carry {', '.join(REQUIRED_TAGS)}.", _required_tags
)
LOG_RETENTION = mandatory("log-retention", "Every log group has a retention period.", _log_retention)
FUNCTION_LOGS = StackValidationPolicy(
    name="functions-log-to-managed-groups",
    description="Every function logs to a log group of this stack (so retention applies).",
    validate=_functions_log_to_managed_groups,
    enforcement_level=EnforcementLevel.MANDATORY,
)
BUCKETS = StackValidationPolicy(
    name="buckets-encrypted-and-tls-only",
    description="Every bucket has KMS encryption and denies plain HTTP.",
    validate=_buckets_encrypted_and_tls_only,
    enforcement_level=EnforcementLevel.MANDATORY,
)

AWS_RULES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    ENCRYPTION_AT_REST,
    LEDGER_DURABILITY,
    LEAST_PRIVILEGE,
    REQUIRED_TAGS_POLICY,
    LOG_RETENTION,
    FUNCTION_LOGS,
    BUCKETS,
]
