"""Policy rules for an Azure cell, importable without starting a policy server (see pack.py).

Each rule reads resource inputs as the engine gives them (wire names: `allowSharedKeyAccess`).
"""

from __future__ import annotations

from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs

from infra.components.azure.roles import CONTRIBUTOR, DATA_PLANE_ROLES, OWNER, USER_ACCESS_ADMINISTRATOR
from infra.policies.common import REQUIRED_TAGS, mandatory, missing_tags

TAGGABLE = frozenset(
    {
        "azure-native:resources:ResourceGroup",
        "azure-native:eventhub:Namespace",
        "azure-native:storage:StorageAccount",
        "azure-native:keyvault:Vault",
        "azure-native:managedidentity:UserAssignedIdentity",
        "azure-native:web:WebApp",
        "azure-native:web:AppServicePlan",
        "azure-native:operationalinsights:Workspace",
        "azure-native:applicationinsights:Component",
        "azure-native:monitor:MetricAlert",
    }
)
# Never for a cell's identities.
BROAD_ROLES = (OWNER, CONTRIBUTOR, USER_ACCESS_ADMINISTRATOR)
# Data roles must name one table or one event hub, not an account or a namespace.
_DATA_SCOPES = ("/tableServices/default/tables/", "/eventhubs/")


def _encryption(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props: dict[str, Any] = args.props
    match args.resource_type:
        case "azure-native:storage:StorageAccount":
            if (props.get("encryption") or {}).get("keySource") != "Microsoft.Keyvault":
                report(f"storage account {args.name}: encrypt with the cell's Key Vault key", None)
            if props.get("minimumTlsVersion") != "TLS1_2" or props.get("enableHttpsTrafficOnly") is False:
                report(f"storage account {args.name}: HTTPS with TLS 1.2 only", None)
        case "azure-native:eventhub:Namespace":
            if props.get("minimumTlsVersion") != "1.2":
                report(f"namespace {args.name}: TLS 1.2 minimum", None)
        case "azure-native:keyvault:Vault":
            properties = props.get("properties") or {}
            if not properties.get("enablePurgeProtection"):
                report(f"vault {args.name}: purge protection is off", None)
        case "azure-native:web:WebApp":
            if not props.get("httpsOnly"):
                report(f"app {args.name}: HTTPS only", None)


def _no_public_access(args: ResourceValidationArgs, report: ReportViolation) -> None:
    props: dict[str, Any] = args.props
    match args.resource_type:
        case "azure-native:storage:StorageAccount":
            if props.get("allowBlobPublicAccess") is not False:
                report(f"storage account {args.name}: anonymous blob access is allowed", None)
            if props.get("allowSharedKeyAccess") is not False:
                report(f"storage account {args.name}: shared keys are allowed (use Entra ID)", None)
        case "azure-native:storage:BlobContainer":
            if props.get("publicAccess", "None") != "None":
                report(f"container {args.name}: public access {props.get('publicAccess')}", None)
        case "azure-native:eventhub:Namespace":
            if not props.get("disableLocalAuth"):
                report(f"namespace {args.name}: SAS keys are enabled (use Entra ID)", None)
        case "azure-native:web:WebApp":
            if props.get("publicNetworkAccess") != "Disabled":
                report(f"app {args.name}: reachable from the internet (no inbound callers)", None)
        case "azure-native:keyvault:Vault":
            properties = props.get("properties") or {}
            network = properties.get("networkAcls") or {}
            if properties.get("publicNetworkAccess") != "Disabled" and network.get("defaultAction") != "Deny":
                report(f"vault {args.name}: open to public networks", None)
        case "azure-native:applicationinsights:Component":
            if not props.get("disableLocalAuth"):
                report(f"insights {args.name}: instrumentation-key ingestion is enabled (use Entra ID)", None)


def _least_privilege(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != "azure-native:authorization:RoleAssignment":
        return
    role = str(args.props.get("roleDefinitionId") or "").rsplit("/", 1)[-1]
    scope = str(args.props.get("scope") or "")
    if role in BROAD_ROLES:
        report(f"role assignment {args.name}: Owner, Contributor or User Access Administrator", None)
    if role in DATA_PLANE_ROLES and not any(part in scope for part in _DATA_SCOPES):
        report(
            f"role assignment {args.name}: data role on {scope or 'no scope'}; scope it to one table or hub",
            None,
        )


def _required_tags(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in TAGGABLE:
        return
    missing = missing_tags(args.props.get("tags"))
    if missing:
        report(f"{args.resource_type} {args.name}: missing tags {', '.join(missing)}", None)


AZURE_RULES = [
    mandatory(
        "azure-encryption", "Storage uses the cell's Key Vault key; TLS 1.2; purge protection.", _encryption
    ),
    mandatory(
        "azure-no-public-access",
        "No anonymous, shared-key or SAS access; apps closed to inbound.",
        _no_public_access,
    ),
    mandatory(
        "azure-least-privilege", "No broad roles; data roles scoped to one table or hub.", _least_privilege
    ),
    mandatory("azure-required-tags", f"Taggable resources carry {', '.join(REQUIRED_TAGS)}.", _required_tags),
]
