"""Built-in Azure role definitions the cell assigns, and deterministic role assignment names."""

from __future__ import annotations

import uuid

import pulumi
import pulumi_azure_native.authorization as authorization

# Built-in role ids (the same in every tenant).
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"  # Owner
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"  # Contributor
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"  # User Access Administrator
TABLE_READER = "76199698-9eea-4c19-bc75-cec21354c6b6"  # Storage Table Data Reader
TABLE_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"  # Storage Table Data Contributor
BLOB_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"  # Storage Blob Data Owner (Functions host storage)
BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"  # Storage Blob Data Contributor (package upload)
EVENTHUB_RECEIVER = "a638d3c7-ab3a-418d-83e6-5f317a0d85a5"  # Azure Event Hubs Data Receiver
EVENTHUB_SENDER = "2b629674-e913-4c01-ae53-ef4638d8f975"  # Azure Event Hubs Data Sender
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"  # Monitoring Metrics Publisher
KEY_ENCRYPTION_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"  # Key Vault Crypto Service Encryption User
DATA_PLANE_ROLES = frozenset({TABLE_READER, TABLE_CONTRIBUTOR, EVENTHUB_RECEIVER, EVENTHUB_SENDER})


def assign(
    name: str,
    role: str,
    principal_id: pulumi.Input[str],
    scope: pulumi.Input[str],
    subscription_id: pulumi.Input[str],
    parent: pulumi.Resource,
    principal_type: str | None = "ServicePrincipal",
    opts: pulumi.ResourceOptions | None = None,
) -> authorization.RoleAssignment:
    """A role assignment named by `name` and `role` (stable across updates). `principal_type` None
    lets Azure look the principal up: the deployer may be a user or a service principal."""
    return authorization.RoleAssignment(
        name,
        role_assignment_name=str(uuid.uuid5(uuid.NAMESPACE_URL, f"meterline/{name}/{role}")),
        role_definition_id=pulumi.Output.concat(
            "/subscriptions/", subscription_id, "/providers/Microsoft.Authorization/roleDefinitions/", role
        ),
        principal_id=principal_id,
        principal_type=principal_type,
        scope=scope,
        opts=pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=parent), opts),
    )
