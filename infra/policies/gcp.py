"""Policy rules for a GCP cell, importable without starting a policy server (see pack.py).

Each rule reads resource inputs as the engine gives them (wire names: `cmekConfig`).
"""

from __future__ import annotations

from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs

from infra.policies.common import REQUIRED_TAGS, mandatory, missing_tags

LABELLED = {
    "gcp:kms/cryptoKey:CryptoKey": "labels",
    "gcp:managedkafka/cluster:Cluster": "labels",
    "gcp:managedkafka/connectCluster:ConnectCluster": "labels",
    "gcp:pubsub/topic:Topic": "labels",
    "gcp:storage/bucket:Bucket": "labels",
    "gcp:cloudfunctionsv2/function:Function": "labels",
    "gcp:monitoring/alertPolicy:AlertPolicy": "userLabels",
    "gcp:monitoring/notificationChannel:NotificationChannel": "userLabels",
}
MAX_ROTATION_SECONDS = 90 * 24 * 3600
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
BASIC_ROLES = ("roles/owner", "roles/editor", "roles/viewer")
# Roles whose project-wide grant reaches every database or cluster: they need a condition.
SCOPED_ROLES = ("roles/datastore.", "roles/managedkafka.")


def _encryption(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props: dict[str, Any] = args.props
    match args.resource_type:
        case "gcp:firestore/database:Database":
            if not (props.get("cmekConfig") or {}).get("kmsKeyName"):
                report(f"database {args.name}: encrypt with the cell's Cloud KMS key (CMEK)", None)
        case "gcp:pubsub/topic:Topic":
            if not props.get("kmsKeyName"):
                report(f"topic {args.name}: encrypt with the cell's Cloud KMS key", None)
        case "gcp:storage/bucket:Bucket":
            if not (props.get("encryption") or {}).get("defaultKmsKeyName"):
                report(f"bucket {args.name}: no default Cloud KMS key", None)
        case "gcp:managedkafka/cluster:Cluster":
            if not (props.get("gcpConfig") or {}).get("kmsKey"):
                report(f"cluster {args.name}: broker storage is not encrypted with the cell's key", None)
        case "gcp:kms/cryptoKey:CryptoKey":
            period = str(props.get("rotationPeriod") or "").removesuffix("s")
            if not period.isdigit() or int(period) > MAX_ROTATION_SECONDS:
                report(f"key {args.name}: rotate at least every 90 days", None)


def _ledger_durability(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "gcp:firestore/database:Database":
        return
    if args.props.get("pointInTimeRecoveryEnablement") != "POINT_IN_TIME_RECOVERY_ENABLED":
        report(f"database {args.name}: point-in-time recovery is off", None)
    if args.props.get("deleteProtectionState") != "DELETE_PROTECTION_ENABLED":
        report(f"database {args.name}: delete protection is off", None)


def _no_public_access(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props: dict[str, Any] = args.props
    if args.resource_type.lower().endswith("iammember") and str(props.get("member")) in PUBLIC_MEMBERS:
        report(f"{args.name}: grants {props.get('role')} to {props.get('member')}", None)
    match args.resource_type:
        case "gcp:storage/bucket:Bucket":
            if props.get("publicAccessPrevention") != "enforced" or not props.get("uniformBucketLevelAccess"):
                report(f"bucket {args.name}: enforce public access prevention and uniform access", None)
        case "gcp:cloudfunctionsv2/function:Function":
            ingress = (props.get("serviceConfig") or {}).get("ingressSettings")
            if ingress != "ALLOW_INTERNAL_ONLY":
                report(f"function {args.name}: ingress {ingress or 'ALLOW_ALL'}; only internal callers", None)


def _least_privilege(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props: dict[str, Any] = args.props
    if args.resource_type == "gcp:projects/iAMMember:IAMMember":
        role = str(props.get("role"))
        if role in BASIC_ROLES:
            report(f"{args.name}: basic role {role}; grant a predefined role", None)
        if role.startswith(SCOPED_ROLES) and not (props.get("condition") or {}).get("expression"):
            report(
                f"{args.name}: {role} on the whole project; add a condition naming the cell's resource", None
            )
    if args.resource_type == "gcp:cloudfunctionsv2/function:Function":
        account = str((props.get("serviceConfig") or {}).get("serviceAccountEmail") or "")
        if not account or account.endswith("-compute@developer.gserviceaccount.com"):
            report(f"function {args.name}: runs as the default compute account; give it its own", None)


def _one_drain_at_a_time(args: ResourceValidationArgs, report: ReportViolation) -> None:
    """A function that drains a topic in a consumer group relies on one run at a time: a second
    instance could commit an offset inside a batch the first applied (see kafka_drain)."""
    if args.resource_type != "gcp:cloudfunctionsv2/function:Function":
        return
    service = args.props.get("serviceConfig") or {}
    if not (service.get("environmentVariables") or {}).get("METERLINE_CONSUMER_GROUP"):
        return
    instances, concurrency = service.get("maxInstanceCount"), service.get("maxInstanceRequestConcurrency")
    if instances != 1 or concurrency != 1:
        report(
            f"function {args.name}: drains a consumer group on {instances or 'unbounded'} instances"
            f" × {concurrency or 'default'} requests; it must run once at a time (1 × 1)",
            None,
        )


def _required_labels(args: ResourceValidationArgs, report: ReportViolation) -> None:
    field = LABELLED.get(args.resource_type)
    if field is None:
        return
    missing = missing_tags(args.props.get(field))
    if missing:
        report(f"{args.resource_type} {args.name}: missing labels {', '.join(missing)}", None)


GCP_RULES = [
    mandatory(
        "gcp-encryption-with-cell-key",
        "Ledger, topics, buckets and Kafka use the cell's CMEK key.",
        _encryption,
    ),
    mandatory(
        "gcp-ledger-durability", "The Firestore ledger keeps PITR and delete protection.", _ledger_durability
    ),
    mandatory(
        "gcp-no-public-access", "No public IAM members, buckets or function ingress.", _no_public_access
    ),
    mandatory(
        "gcp-least-privilege", "No basic roles; ledger and Kafka roles are conditioned.", _least_privilege
    ),
    mandatory(
        "gcp-one-drain-at-a-time",
        "A function that drains a Kafka consumer group runs on one instance, one request at a time.",
        _one_drain_at_a_time,
    ),
    mandatory(
        "gcp-required-labels", f"Labelled resources carry {', '.join(REQUIRED_TAGS)}.", _required_labels
    ),
]
