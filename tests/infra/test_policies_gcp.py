"""Each GCP policy rule rejects a resource that breaks it (test_policies.py passes it over every stack)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from infra.policies import gcp as rules
from tests.infra.test_policies import violations

GCP = "gcp-us-central1"


def _one(
    previews: dict[str, Any], token: str, name: str, change: Callable[[dict[str, Any]], None]
) -> list[dict[str, Any]]:
    [target] = [r for r in previews[GCP]["resources"] if r["type"] == token and r["name"] == name]
    broken = copy.deepcopy(target)
    change(broken["inputs"])
    return [broken]


DATABASE = "gcp:firestore/database:Database"
CASES = [
    (
        "gcp-encryption-with-cell-key",
        DATABASE,
        "ledger",
        lambda i: i.pop("cmekConfig"),
        "encrypt with the cell's Cloud KMS key",
    ),
    (
        "gcp-encryption-with-cell-key",
        "gcp:pubsub/topic:Topic",
        "usage-events",
        lambda i: i.pop("kmsKeyName"),
        "encrypt",
    ),
    (
        "gcp-encryption-with-cell-key",
        "gcp:kms/cryptoKey:CryptoKey",
        "cell",
        lambda i: i.update(rotationPeriod="31536000s"),
        "rotate",
    ),
    (
        "gcp-ledger-durability",
        DATABASE,
        "ledger",
        lambda i: i.update(deleteProtectionState="DELETE_PROTECTION_DISABLED"),
        "delete protection is off",
    ),
    (
        "gcp-ledger-durability",
        DATABASE,
        "ledger",
        lambda i: i.pop("pointInTimeRecoveryEnablement"),
        "point-in-time recovery is off",
    ),
    (
        "gcp-no-public-access",
        "gcp:storage/bucket:Bucket",
        "sources",
        lambda i: i.update(publicAccessPrevention="inherited"),
        "public access prevention",
    ),
    (
        "gcp-no-public-access",
        "gcp:cloudfunctionsv2/function:Function",
        "meter",
        lambda i: i["serviceConfig"].update(ingressSettings="ALLOW_ALL"),
        "only internal callers",
    ),
    (
        "gcp-no-public-access",
        "gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
        "publish-invoker",
        lambda i: i.update(member="allUsers"),
        "allUsers",
    ),
    (
        "gcp-least-privilege",
        "gcp:projects/iAMMember:IAMMember",
        "meter-ledger",
        lambda i: i.pop("condition"),
        "add a condition",
    ),
    (
        "gcp-least-privilege",
        "gcp:projects/iAMMember:IAMMember",
        "meter-ledger",
        lambda i: i.update(role="roles/editor"),
        "basic role",
    ),
    (
        "gcp-least-privilege",
        "gcp:cloudfunctionsv2/function:Function",
        "publish",
        lambda i: i["serviceConfig"].pop("serviceAccountEmail"),
        "default compute account",
    ),
    (
        "gcp-one-drain-at-a-time",
        "gcp:cloudfunctionsv2/function:Function",
        "aggregate",
        lambda i: i["serviceConfig"].update(maxInstanceCount=20),
        "must run once at a time",
    ),
    (
        "gcp-required-labels",
        "gcp:managedkafka/cluster:Cluster",
        "cluster",
        lambda i: i["labels"].pop("cost-center"),
        "missing labels cost-center",
    ),
]


@pytest.mark.parametrize(
    ("policy_name", "token", "name", "change", "message"),
    CASES,
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_gcp_rule_rejects_a_resource_that_breaks_it(
    previews: dict[str, Any], policy_name: str, token: str, name: str, change: Any, message: str
) -> None:
    # GIVEN one resource of the stack broken  WHEN the rule checks it  THEN exactly it is reported
    [policy] = [p for p in rules.GCP_RULES if p.name == policy_name]
    found = violations(policy, _one(previews, token, name, change))
    assert len(found) == 1 and message in found[0], found
