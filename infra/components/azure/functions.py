"""One Flex Consumption function app (Python) per `meterline.topology.FUNCTIONS` entry, each in its
own FC1 plan (Flex hosts one app per plan) with its own user-assigned identity, so every job gets
exactly its data roles. The triggers are the code's (`functions/<job>/azure.py`):

- meter and aggregate: Event Hubs triggers on `usage.events` (`HUB_TRIGGERS`), aggregate in a
  consumer group of its own, joining each record with what meter wrote to the usage table;
- rate and close: timers. Neither receives from Event Hubs.

Packages are deployed from a blob container of the cell's host storage account, read with the
app's identity (`functionAppConfig.deployment.storage`, the documented Flex way), and uploaded by
the deployer with Entra ID (package_blob.py: the account takes no shared keys), who holds Storage
Blob Data Contributor on each package container for that. No connection strings: host storage,
Event Hubs and Application Insights use the identity too. The host account is encrypted with the
cell's key through the ledger's encryption identity, so it waits for that identity's key grant.
App names are global (`<app>.azurewebsites.net`): they carry the stack's name suffix.

A package is a "local build": host.json at its root and the third-party dependencies, built for
Linux and the app's Python, under `.python_packages/lib/site-packages` (fetched once per set of pins,
infra/packaging.py). An offline preview bundles them only if that cache already exists.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_azure_native.managedidentity as managedidentity
import pulumi_azure_native.storage as storage
import pulumi_azure_native.web as web

from infra.components.aws.functions import invocations_per_month
from infra.components.azure.events import Events
from infra.components.azure.ledgers import TABLE_PREFIX, Ledgers, account_name
from infra.components.azure.package_blob import PackageBlob, PackageBlobArgs
from infra.components.azure.roles import (
    BLOB_CONTRIBUTOR,
    BLOB_OWNER,
    EVENTHUB_RECEIVER,
    EVENTHUB_SENDER,
    METRICS_PUBLISHER,
    TABLE_CONTRIBUTOR,
    TABLE_READER,
    assign,
)
from infra.packaging import (
    CATALOG_NAME,
    FUNCTIONS_DIR,
    core_entries,
    offline_build,
    vendored_dependencies,
    write_zip,
)
from infra.settings import rendered
from meterline.adapters.azure_functions import HUB_TRIGGERS, TIMER_SCHEDULES, AzureSettings, HubTrigger
from meterline.topology import AGGREGATE, USAGE_TABLE, Function

PYTHON_VERSION = "3.12"
PACKAGE_BLOB = "released-package.zip"
FLEX_MEMORY_MB = (512, 2048, 4096)
JOINS = {AGGREGATE.job: (USAGE_TABLE.name,)}
"""Tables a job reads on Azure beyond the topology's: aggregate asks the usage table what meter
made of each record (on AWS the usage stream brings it)."""
TRIGGER_CONNECTION = "METERLINE_EVENTHUB"
"""The `connection` of the functions' Event Hubs triggers: the prefix of its identity-based settings."""
FUNCTION_APP = '''"""The {job} function app: its one blueprint (written by infra/components/azure)."""

import azure.functions as func
from {job}_function import blueprint

app = func.FunctionApp()
app.register_functions(blueprint)
'''
HOST_JSON = {
    # the host.json schema of Functions runtime 2.x and later (4.x included); the host refuses others
    "version": "2.0",
    # Python apps get non-HTTP, non-timer bindings (the Event Hubs trigger) only from a bundle;
    # 4.x carries an Event Hubs extension (5+) that takes the identity-based `<connection>__*` settings
    "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"},
}


@dataclass(frozen=True, slots=True)
class FunctionsArgs:
    cell: str
    location: str
    resource_group: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    deployer_object_id: pulumi.Input[str]
    """Who runs `pulumi up` (azure-native's client config): it uploads the packages."""
    name_suffix: str
    functions: Sequence[Function]
    catalog: Path
    build_dir: Path
    events: Events
    ledgers: Ledgers
    insights_id: pulumi.Input[str]
    insights_connection: pulumi.Input[str]
    tags: Mapping[str, str]
    offline: bool = field(default_factory=offline_build)
    """Offline previews fetch no dependencies (the cached ones are still bundled)."""


@dataclass(frozen=True, slots=True)
class DeployedFunction:
    definition: Function
    name: pulumi.Output[str]
    app_id: pulumi.Output[str]
    principal_id: pulumi.Output[str]


def flex_memory(memory_mb: int) -> int:
    """The smallest Flex instance size that holds the job's memory."""
    return next((size for size in FLEX_MEMORY_MB if size >= memory_mb), FLEX_MEMORY_MB[-1])


def hub_trigger(function: Function) -> HubTrigger | None:
    """The hub and consumer group the job's Event Hubs trigger reads, None for a timer."""
    return HUB_TRIGGERS.get(function.job)


def tables_read(function: Function) -> tuple[str, ...]:
    return (*function.reads, *JOINS.get(function.job, ()))


def timer_invocations_per_month(function: Function) -> int:
    """Firings in a 30-day month of the job's timer (NCRONTAB: second, minute, hour, day, month, weekday)."""
    schedule = TIMER_SCHEDULES[function.job]
    second, minute, hour, day, month, weekday = schedule.split()
    if not second.isdigit():
        raise ValueError(f"cannot count invocations of timer {schedule!r}: more than one a minute")
    weekday = "?" if weekday == "*" else weekday
    return invocations_per_month(f"cron({minute} {hour} {day} {month} {weekday} *)")


def ncrontab(expression: str) -> str:
    """EventBridge `cron(m h dom mon dow [year])` → the six-field NCRONTAB of a timer trigger."""
    matched = re.fullmatch(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+)(?: \S+)?\)", expression)
    if not matched:
        raise ValueError(f"not an EventBridge cron expression: {expression!r}")
    return "0 " + " ".join("*" if field == "?" else field for field in matched.groups())


def build_package(job: str, catalog: Path, out: Path, dependencies: Path | None) -> Path:
    """`<out>/<job>.zip`: the job's blueprint (functions/<job>/azure.py as `<job>_function.py`), a
    `function_app.py` that registers it alone (the host indexes only a FunctionApp there), host.json,
    the core modules the blueprint can import (its import closure), the catalog and the entries of
    the `dependencies` zip when there is one."""
    out.mkdir(parents=True, exist_ok=True)
    handler = FUNCTIONS_DIR / job / "azure.py"
    entries: list[tuple[str, Path | bytes]] = [*core_entries(handler)]
    if handler.is_file():
        entries += [
            (f"{job}_function.py", handler),
            ("function_app.py", FUNCTION_APP.format(job=job).encode()),
        ]
    entries += [("host.json", json.dumps(HOST_JSON, indent=2).encode() + b"\n"), (CATALOG_NAME, catalog)]
    archive = out / f"{job}.zip"
    write_zip(archive, entries, base=dependencies)
    return archive


class Functions(pulumi.ComponentResource):
    functions: dict[str, DeployedFunction]

    def __init__(self, name: str, args: FunctionsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:azure:Functions", name, None, opts)
        self.args = args
        self.child = pulumi.ResourceOptions(parent=self)
        self.host = storage.StorageAccount(
            "host",
            account_name=account_name(args.cell, "host", args.name_suffix),
            resource_group_name=args.resource_group,
            location=args.location,
            kind="StorageV2",
            sku={"name": "Standard_LRS"},
            allow_blob_public_access=False,
            allow_shared_key_access=False,
            default_to_o_auth_authentication=True,
            enable_https_traffic_only=True,
            minimum_tls_version="TLS1_2",
            identity={
                "type": "UserAssigned",
                "user_assigned_identities": [args.ledgers.encryption_identity_id],
            },
            encryption={
                "key_source": "Microsoft.Keyvault",
                "key_vault_properties": {
                    "key_name": args.ledgers.key_name,
                    "key_vault_uri": args.ledgers.vault_uri,
                },
                "encryption_identity": {
                    "encryption_user_assigned_identity": args.ledgers.encryption_identity_id
                },
                "services": {"blob": {"enabled": True, "key_type": "Account"}},
            },
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.ledgers.key_grant]),
        )
        self.dependencies = vendored_dependencies("azure", PYTHON_VERSION, offline=args.offline)
        self.dependencies_bundled = self.dependencies is not None
        self.functions = {function.job: self._function(function) for function in args.functions}
        self.cost_items = self._cost_items()
        self.register_outputs({job: f.app_id for job, f in self.functions.items()})

    def _function(self, function: Function) -> DeployedFunction:
        args = self.args
        job = function.job
        physical = f"{args.cell}-{job}"
        identity = managedidentity.UserAssignedIdentity(
            job,
            resource_name_=physical,
            resource_group_name=args.resource_group,
            location=args.location,
            tags=dict(args.tags),
            opts=self.child,
        )
        grants = self._grants(function, identity.principal_id)
        container = storage.BlobContainer(
            job,
            container_name=f"{job}-package",
            account_name=self.host.name,
            resource_group_name=args.resource_group,
            public_access="None",
            opts=self.child,
        )
        archive = build_package(job, args.catalog, args.build_dir, self.dependencies)
        uploader = assign(
            f"{physical}-deployer-uploads",
            BLOB_CONTRIBUTOR,
            args.deployer_object_id,
            container.id,
            args.subscription_id,
            self,
            principal_type=None,
        )
        package = PackageBlob(
            job,
            PackageBlobArgs(
                account_url=self.host.primary_endpoints.blob,
                container=container.name,
                blob=PACKAGE_BLOB,
                source=archive,
                sha256=hashlib.sha256(archive.read_bytes()).hexdigest(),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[uploader]),
        )
        plan = web.AppServicePlan(
            job,
            name=physical,
            resource_group_name=args.resource_group,
            location=args.location,
            kind="functionapp",
            reserved=True,
            sku={"name": "FC1", "tier": "FlexConsumption"},
            tags=dict(args.tags),
            opts=self.child,
        )
        package_url = pulumi.Output.concat(self.host.primary_endpoints.blob, container.name)
        app = web.WebApp(
            job,
            name=f"{physical}-{args.name_suffix}",
            resource_group_name=args.resource_group,
            location=args.location,
            kind="functionapp,linux",
            server_farm_id=plan.id,
            https_only=True,
            public_network_access="Disabled",
            client_cert_enabled=False,
            identity={"type": "UserAssigned", "user_assigned_identities": [identity.id]},
            function_app_config={
                "deployment": {
                    "storage": {
                        "type": "blobContainer",
                        "value": package_url,
                        "authentication": {
                            "type": "UserAssignedIdentity",
                            "user_assigned_identity_resource_id": identity.id,
                        },
                    }
                },
                "runtime": {"name": "python", "version": PYTHON_VERSION},
                "scale_and_concurrency": {
                    "instance_memory_mb": flex_memory(function.memory_mb),
                    "maximum_instance_count": 40,
                },
            },
            site_config={
                "min_tls_version": "1.2",
                "ftps_state": "Disabled",
                "app_settings": self._settings(function, identity),
            },
            tags={**args.tags, "job": job},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*grants, package]),
        )
        return DeployedFunction(function, app.name, app.id, identity.principal_id)

    def _grants(self, function: Function, principal: pulumi.Output[str]) -> list[pulumi.Resource]:
        args = self.args
        job = f"{args.cell}-{function.job}"
        tables = args.ledgers.table_ids
        hubs = args.events.hub_ids

        def grant(label: str, role: str, scope: pulumi.Input[str]) -> pulumi.Resource:
            return assign(f"{job}-{label}", role, principal, scope, args.subscription_id, self)

        grants = [
            grant("host", BLOB_OWNER, self.host.id),
            grant("insights", METRICS_PUBLISHER, args.insights_id),
        ]
        for table in sorted(set(tables_read(function)) | set(function.writes)):
            role = TABLE_CONTRIBUTOR if table in function.writes else TABLE_READER
            grants.append(grant(f"table-{table}", role, tables[table]))
        trigger = hub_trigger(function)
        if trigger is not None:
            grants.append(grant(f"reads-{trigger.hub}", EVENTHUB_RECEIVER, hubs[trigger.hub]))
        for hub in function.publishes:
            grants.append(grant(f"sends-{hub}", EVENTHUB_SENDER, hubs[hub]))
        return grants

    def _settings(
        self, function: Function, identity: managedidentity.UserAssignedIdentity
    ) -> pulumi.Output[list[dict[str, str]]]:
        """The host's settings, and what the function's ``AzureSettings.from_env`` reads."""
        args = self.args
        host: dict[str, pulumi.Input[str]] = {
            "AzureWebJobsStorage__accountName": self.host.name,
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": identity.client_id,
            "APPLICATIONINSIGHTS_CONNECTION_STRING": args.insights_connection,
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": pulumi.Output.concat(
                "ClientId=", identity.client_id, ";Authorization=AAD"
            ),
            "AZURE_CLIENT_ID": identity.client_id,
        }
        if hub_trigger(function) is not None:
            # the trigger's identity-based connection: <connection>__fullyQualifiedNamespace and so on
            namespace = pulumi.Output.concat(args.events.namespace_name, ".servicebus.windows.net")
            host[f"{TRIGGER_CONNECTION}__fullyQualifiedNamespace"] = namespace
            host[f"{TRIGGER_CONNECTION}__credential"] = "managedidentity"
            host[f"{TRIGGER_CONNECTION}__clientId"] = identity.client_id
        meterline = rendered(
            AzureSettings,
            table_prefix=TABLE_PREFIX,
            tables_endpoint=args.ledgers.table_endpoint,
            kafka_bootstrap=args.events.kafka_bootstrap if function.publishes else "",
        )
        return pulumi.Output.all(pulumi.Output.all(**host), meterline).apply(
            lambda both: [{"name": name, "value": value} for name, value in {**both[0], **both[1]}.items()]
        )

    @staticmethod
    def _trigger_cost(function: Function) -> dict[str, Any]:
        trigger = hub_trigger(function)
        if trigger is not None:
            return {"trigger": "eventhub", "source": trigger.hub, "consumer_group": trigger.consumer_group}
        return {"trigger": "timer", "invocations_per_month": timer_invocations_per_month(function)}

    def _cost_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = [
            {
                "kind": "storage_account",
                "name": account_name(self.args.cell, "host", self.args.name_suffix),
                "purpose": "function host: packages, checkpoints, leases",
            }
        ]
        for function in self.args.functions:
            items.append(
                {
                    "kind": "function_app_flex",
                    "name": f"{self.args.cell}-{function.job}",
                    "job": function.job,
                    "memory_mb": function.memory_mb,
                    "instance_memory_mb": flex_memory(function.memory_mb),
                    "dependencies_bundled": self.dependencies_bundled,
                    **self._trigger_cost(function),
                }
            )
        return items
