"""Each Azure policy rule rejects a resource that breaks it (test_policies.py passes it over every stack)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from infra.policies import azure as rules
from tests.infra.test_policies import violations

AZURE = "azure-eastus"


def _one(
    previews: dict[str, Any], token: str, name: str, change: Callable[[dict[str, Any]], None]
) -> list[dict[str, Any]]:
    [target] = [r for r in previews[AZURE]["resources"] if r["type"] == token and r["name"] == name]
    broken = copy.deepcopy(target)
    change(broken["inputs"])
    return [broken]


ACCOUNT = "azure-native:storage:StorageAccount"
ASSIGNMENT = "azure-native:authorization:RoleAssignment"
OWNER = (
    "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
)
CASES = [
    (
        "azure-encryption",
        ACCOUNT,
        "ledger",
        lambda i: i["encryption"].update(keySource="Microsoft.Storage"),
        "Key Vault key",
    ),
    ("azure-encryption", ACCOUNT, "ledger", lambda i: i.update(minimumTlsVersion="TLS1_0"), "TLS 1.2"),
    (
        "azure-encryption",
        "azure-native:keyvault:Vault",
        "cell",
        lambda i: i["properties"].pop("enablePurgeProtection"),
        "purge protection",
    ),
    ("azure-no-public-access", ACCOUNT, "host", lambda i: i.update(allowSharedKeyAccess=True), "shared keys"),
    (
        "azure-no-public-access",
        ACCOUNT,
        "ledger",
        lambda i: i.update(allowBlobPublicAccess=True),
        "anonymous blob access",
    ),
    (
        "azure-no-public-access",
        "azure-native:eventhub:Namespace",
        "namespace",
        lambda i: i.update(disableLocalAuth=False),
        "SAS keys",
    ),
    (
        "azure-no-public-access",
        "azure-native:web:WebApp",
        "meter",
        lambda i: i.update(publicNetworkAccess="Enabled"),
        "internet",
    ),
    (
        "azure-least-privilege",
        ASSIGNMENT,
        "ml-eus-meter-table-usage",
        lambda i: i.update(scope=i["scope"].split("/tableServices")[0]),
        "scope it to one table or hub",
    ),
    (
        "azure-least-privilege",
        ASSIGNMENT,
        "ml-eus-meter-host",
        lambda i: i.update(roleDefinitionId=OWNER),
        "Owner",
    ),
    (
        "azure-required-tags",
        "azure-native:eventhub:Namespace",
        "namespace",
        lambda i: i["tags"].pop("owner"),
        "missing tags owner",
    ),
]


@pytest.mark.parametrize(
    ("policy_name", "token", "name", "change", "message"),
    CASES,
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_azure_rule_rejects_a_resource_that_breaks_it(
    previews: dict[str, Any], policy_name: str, token: str, name: str, change: Any, message: str
) -> None:
    # GIVEN one resource of the stack broken  WHEN the rule checks it  THEN exactly it is reported
    [policy] = [p for p in rules.AZURE_RULES if p.name == policy_name]
    found = violations(policy, _one(previews, token, name, change))
    assert len(found) == 1 and message in found[0], found
