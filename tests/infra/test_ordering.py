"""What needs a role first waits for it, in every stack (read from the dependencies the engine is
given); what `pulumi destroy` must never take is protected and retained; and names that would
collide when a cell is created again carry its suffix."""

from __future__ import annotations

from typing import Any

import pytest

from infra.components.azure.ledgers import account_name
from infra.components.azure.roles import BLOB_CONTRIBUTOR
from infra.config import load_stack_config, read_stack_file, stack_names
from infra.mocks import PACKAGE_BLOB
from meterline.topology import CELL_TABLES, HOME_TABLES
from tests.infra.builds import custom, key, of_type

STACKS = stack_names()


def on(cloud: str) -> list[str]:
    return [stack for stack in STACKS if stack.startswith(f"{cloud}-")]


def uses(resource: dict[str, Any], other: dict[str, Any]) -> bool:
    return key(other) in resource["dependencies"]


@pytest.mark.parametrize("stack", on("aws"))
def test_aws_functions_and_schedules_wait_for_their_roles_policy(
    previews: dict[str, Any], stack: str
) -> None:
    build = previews[stack]
    roles = of_type(build, "aws:iam/role:Role")
    for policy in of_type(build, "aws:iam/rolePolicy:RolePolicy"):
        [role] = [r for r in roles if uses(policy, r)]
        # GIVEN what runs as the role  THEN it waits for the role's permissions
        consumers = [
            r
            for r in of_type(build, "aws:lambda/function:Function")
            + of_type(build, "aws:scheduler/schedule:Schedule")
            if uses(r, role)
        ]
        assert consumers, key(policy)
        for consumer in consumers:
            assert uses(consumer, policy), f"{key(consumer)} before {key(policy)}"


@pytest.mark.parametrize("stack", on("gcp"))
def test_gcp_functions_wait_for_their_accounts_grants_and_schedules_for_the_right_to_invoke(
    previews: dict[str, Any], stack: str
) -> None:
    build = previews[stack]
    functions = of_type(build, "gcp:cloudfunctionsv2/function:Function")
    grants = [r for r in custom(build) if r["type"].lower().endswith("iammember")]
    for account in of_type(build, "gcp:serviceaccount/account:Account"):
        for function in (f for f in functions if uses(f, account)):
            # every grant to an account the function runs, builds or is triggered as comes first, but
            # the right to invoke a function (granted on the function, so after it)
            on_functions = [g for g in grants if any(uses(g, f) for f in functions)]
            for grant in (g for g in grants if uses(g, account) and g not in on_functions):
                assert uses(function, grant), f"{key(function)} before {key(grant)}"
    for job in of_type(build, "gcp:cloudscheduler/job:Job"):
        [target] = [f for f in functions if uses(job, f)]
        [invoker] = [g for g in grants if g["type"].startswith("gcp:cloudrunv2") and uses(g, target)]
        assert uses(job, invoker), f"{key(job)} before {key(invoker)}"


@pytest.mark.parametrize("stack", on("azure"))
def test_azure_resources_acting_as_an_identity_wait_for_its_role_assignments(
    previews: dict[str, Any], stack: str
) -> None:
    build = previews[stack]
    assignments = of_type(build, "azure-native:authorization:RoleAssignment")
    acting = of_type(build, "azure-native:web:WebApp") + of_type(build, "azure-native:storage:StorageAccount")
    for identity in of_type(build, "azure-native:managedidentity:UserAssignedIdentity"):
        granted = [a for a in assignments if uses(a, identity)]
        # GIVEN the apps that run as the identity and the accounts encrypted through it
        consumers = [r for r in acting if uses(r, identity)]
        assert consumers and granted, key(identity)
        for consumer in consumers:
            for assignment in granted:
                assert uses(consumer, assignment), f"{key(consumer)} before {key(assignment)}"
    # AND each package is uploaded once the deployer may write its container
    for blob in of_type(build, PACKAGE_BLOB):
        uploaders = [
            a
            for a in assignments
            if uses(blob, a) and a["inputs"]["roleDefinitionId"].endswith(BLOB_CONTRIBUTOR)
        ]
        [container] = [c for c in of_type(build, "azure-native:storage:BlobContainer") if uses(blob, c)]
        assert any(uses(a, container) for a in uploaders), key(blob)  # scoped to this container
        [app] = [a for a in of_type(build, "azure-native:web:WebApp") if a["name"] == blob["name"]]
        assert uses(app, blob)


KEPT = {
    "aws": {"aws:kms/key:Key::cell", *(f"aws:dynamodb/table:Table::{t.name}" for t in CELL_TABLES)},
    "gcp": {
        "gcp:kms/keyRing:KeyRing::cell",
        "gcp:kms/cryptoKey:CryptoKey::cell",
        "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember::key-firestore",
        "gcp:firestore/database:Database::ledger",
    },
    "azure": {
        "azure-native:resources:ResourceGroup::cell",
        "azure-native:keyvault:Vault::cell",
        "azure-native:keyvault:Key::cell",
        "azure-native:managedidentity:UserAssignedIdentity::ledger-encryption",
        "azure-native:authorization:RoleAssignment::{cell}-ledger-encryption-key",
        "azure-native:storage:StorageAccount::ledger",
        "azure-native:authorization:ManagementLockByScope::ledger",
        *(f"azure-native:storage:Table::{t.name}" for t in CELL_TABLES),
    },
}
"""The ledgers and what keeps them readable: their keys (and on Azure the encryption identity, its
grant, the vault and the resource group whose deletion would take everything in it)."""
KEPT_HOME = {
    "aws:kms/key:Key::cell",
    "aws:kms/key:Key::statements",
    "aws:s3/bucket:Bucket::statements",
    *(f"aws:dynamodb/table:Table::{t.name}" for t in HOME_TABLES),
}
"""A home's: its ledgers, the statements bucket (what each cell sent), and their keys."""


@pytest.mark.parametrize("stack", STACKS)
def test_the_ledgers_and_what_keeps_them_readable_are_protected_and_retained_and_nothing_else(
    previews: dict[str, Any], stack: str
) -> None:
    config = load_stack_config(stack, read_stack_file(stack))
    wanted = {name.format(cell=config.cell) for name in (KEPT_HOME if config.is_home else KEPT[config.cloud])}
    protected = {key(r) for r in custom(previews[stack]) if r["protect"]}
    retained = {key(r) for r in custom(previews[stack]) if r["retain_on_delete"]}
    assert protected == retained == wanted


SUFFIXED = {
    "aws": {"aws:dynamodb/table:Table": "name"},
    "gcp": {"gcp:kms/keyRing:KeyRing": "name", "gcp:firestore/database:Database": "name"},
    "azure": {
        "azure-native:resources:ResourceGroup": "resourceGroupName",
        "azure-native:eventhub:Namespace": "namespaceName",
        "azure-native:web:WebApp": "name",
        "azure-native:keyvault:Vault": "vaultName",
    },
}
"""Names that are global, or that outlive a destroy: each carries the stack's name suffix."""


@pytest.mark.parametrize("stack", STACKS)
def test_names_that_are_global_or_outlive_a_destroy_carry_the_stacks_suffix(
    previews: dict[str, Any], stack: str
) -> None:
    config = load_stack_config(stack, read_stack_file(stack))
    build = previews[stack]
    for token, field in SUFFIXED[config.cloud].items():
        names = [r["inputs"][field] for r in of_type(build, token)]
        assert names and all(f"-{config.name_suffix}" in name for name in names), token
    # storage account names (24 letters and digits) take the suffix into their digest
    for account in of_type(build, "azure-native:storage:StorageAccount"):
        purpose = account["name"]
        assert account["inputs"]["accountName"] == account_name(config.cell, purpose, config.name_suffix)
        assert account_name(config.cell, purpose, config.name_suffix) != account_name(
            config.cell, purpose, "0000"
        )
