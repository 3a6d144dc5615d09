"""The cell's ledgers as Azure Storage tables, one per `meterline.topology.TABLES` entry, in a
zone-redundant storage account encrypted with the cell's Key Vault key; plus that vault and key.

Why Storage tables and not Cosmos DB for Table: cost per write. A table operation costs about
$0.036 per million (transactions are $0.00036 per 10,000), where a Cosmos DB serverless write of a
1 KB entity costs about 5-6 request units, ~$1.4 per million, so the usage ledger alone (one
conditional insert per event) would cost ~40x more. What Cosmos would add, and this choice gives up:
- TTL: Storage tables have none; the ledger needs none either (nothing in it expires, on any cloud).
- Point-in-time restore: Storage has it for blobs only. The ledger is append-only with conditional
  creates; ZRS keeps three zonal copies and a CanNotDelete lock guards the account, but a restore
  of an overwritten row is not possible — an accepted gap, written down here.
- Transactions: the same either way (entity group transactions: one PartitionKey, ≤100 operations).
Shared keys are disabled: every client uses Entra ID, with data roles scoped to single tables.

Kept on destroy (infra/components/keep.py): the account, its tables and lock, and what keeps it
readable: the vault, the key, the encryption identity and its grant on the key. The vault (purge
protection holds its name for 90 days after deletion) and the account carry the stack's suffix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native.authorization as authorization
import pulumi_azure_native.keyvault as keyvault
import pulumi_azure_native.managedidentity as managedidentity
import pulumi_azure_native.storage as storage

from infra.components.azure.roles import KEY_ENCRYPTION_USER, assign
from infra.components.keep import kept
from meterline.topology import Table


@dataclass(frozen=True, slots=True)
class LedgersArgs:
    cell: str
    location: str
    resource_group: pulumi.Input[str]
    tenant_id: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    tables: Sequence[Table]
    tags: Mapping[str, str]
    name_suffix: str


TABLE_PREFIX = "ledger"
"""The functions' METERLINE_TABLE_PREFIX: table `usage` is `ledgerusage` (Azure: letters and digits)."""


def account_name(cell: str, purpose: str, suffix: str) -> str:
    """Storage account names are global, 3-24 lowercase letters and digits: the cell, the purpose,
    and a digest that the stack's name suffix changes."""
    digest = hashlib.sha256(f"{cell}/{purpose}/{suffix}".encode()).hexdigest()
    return (cell.replace("-", "") + purpose + digest)[:24]


class Ledgers(pulumi.ComponentResource):
    account_id: pulumi.Output[str]
    table_endpoint: pulumi.Output[str]
    table_ids: dict[str, pulumi.Output[str]]
    vault_uri: pulumi.Output[str]
    key_name: pulumi.Output[str]
    encryption_identity_id: pulumi.Output[str]
    key_grant: pulumi.Resource
    """The encryption identity's right to use the key: accounts encrypted with it wait for it."""

    def __init__(self, name: str, args: LedgersArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:azure:Ledgers", name, None, opts)
        vault = keyvault.Vault(
            "cell",
            vault_name=f"{args.cell}-keys-{args.name_suffix}",
            resource_group_name=args.resource_group,
            location=args.location,
            properties={
                "tenant_id": args.tenant_id,
                "sku": {"family": "A", "name": "standard"},
                "enable_rbac_authorization": True,
                "enable_purge_protection": True,
                "enable_soft_delete": True,
                "soft_delete_retention_in_days": 90,
                "public_network_access": "Disabled",
                "network_acls": {"default_action": "Deny", "bypass": "AzureServices"},
            },
            tags=dict(args.tags),
            opts=kept(self),
        )
        key = keyvault.Key(
            "cell",
            key_name=f"{args.cell}-ledger",
            vault_name=vault.name,
            resource_group_name=args.resource_group,
            properties={
                "kty": "RSA",
                "key_size": 3072,
                "rotation_policy": {
                    "attributes": {"expiry_time": "P2Y"},
                    "lifetime_actions": [
                        {"action": {"type": "rotate"}, "trigger": {"time_before_expiry": "P30D"}}
                    ],
                },
            },
            tags=dict(args.tags),
            opts=kept(self),
        )
        identity = managedidentity.UserAssignedIdentity(
            "ledger-encryption",
            resource_name_=f"{args.cell}-ledger-encryption",
            resource_group_name=args.resource_group,
            location=args.location,
            tags=dict(args.tags),
            opts=kept(self),
        )
        key_grant = assign(
            f"{args.cell}-ledger-encryption-key",
            KEY_ENCRYPTION_USER,
            identity.principal_id,
            key.id,
            args.subscription_id,
            self,
            opts=kept(self),
        )
        self.key_grant = key_grant
        ledger_account = account_name(args.cell, "ledger", args.name_suffix)
        account = storage.StorageAccount(
            "ledger",
            account_name=ledger_account,
            resource_group_name=args.resource_group,
            location=args.location,
            kind="StorageV2",
            sku={"name": "Standard_ZRS"},
            allow_blob_public_access=False,
            allow_shared_key_access=False,
            default_to_o_auth_authentication=True,
            enable_https_traffic_only=True,
            minimum_tls_version="TLS1_2",
            identity={"type": "UserAssigned", "user_assigned_identities": [identity.id]},
            encryption={
                "key_source": "Microsoft.Keyvault",
                "require_infrastructure_encryption": True,
                "key_vault_properties": {"key_name": key.name, "key_vault_uri": vault.properties.vault_uri},
                "encryption_identity": {"encryption_user_assigned_identity": identity.id},
                "services": {
                    "table": {"enabled": True, "key_type": "Account"},
                    "blob": {"enabled": True, "key_type": "Account"},
                },
            },
            tags=dict(args.tags),
            opts=kept(self, [key_grant]),
        )
        authorization.ManagementLockByScope(
            "ledger",
            scope=account.id,
            lock_name="ledger-cannot-delete",
            level="CanNotDelete",
            notes="billing ledgers: remove this lock deliberately before deleting the account",
            opts=kept(self),
        )
        self.table_ids = {
            table.name: storage.Table(
                table.name,
                table_name=f"{TABLE_PREFIX}{table.name}",
                account_name=account.name,
                resource_group_name=args.resource_group,
                opts=kept(self),
            ).id
            for table in args.tables
        }
        self.account_id = account.id
        self.table_endpoint = account.primary_endpoints.table
        self.vault_uri = vault.properties.vault_uri
        self.key_name = key.name
        self.encryption_identity_id = identity.id
        self.cost_items: list[dict[str, Any]] = [
            {"kind": "key_vault_key", "name": f"{args.cell}-ledger", "count": 1},
            *(
                {
                    "kind": "storage_table",
                    "name": f"{ledger_account}/{TABLE_PREFIX}{table.name}",
                    "table": table.name,
                    "replication": "ZRS",
                }
                for table in args.tables
            ),
        ]
        self.register_outputs({"account": self.account_id})
