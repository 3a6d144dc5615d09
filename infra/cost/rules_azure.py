"""How each Azure resource kind of a billing cell turns into priced quantities.

Figures are looked up under Azure names first (`azure_tables.usage.transactions`,
`azure_functions.meter.executions`) and fall back to the AWS figures of the same work, noted on
the line, until Azure measurements replace them.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from infra.cost.model import BYTES_PER_GB, HOURS_PER_MONTH, Line, Pricing, Unpriced, counted, rule
from infra.cost.rules_aws import _table_storage, _topic_records

Entries = list[Line | Unpriced]
AWS_FIGURE = "AWS figure of the same work, not yet measured on Azure"
LEASE_WRITES_PER_PARTITION_MONTH = Decimal(259_200)
"""Design estimate: the Event Hubs processor renews each partition's ownership blob every 10 s."""


@rule("azure", "eventhubs_namespace")
def eventhubs_namespace(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    sku = str(resource.get("sku", "?"))
    capacity = Decimal(str(resource.get("capacity", -1)))
    if capacity <= 0:
        return [Unpriced(f"eventhubs_namespace {resource.get('name', '?')}", "capacity must be positive")]
    unit = {"Standard": "throughput_unit_hour", "Premium": "processing_unit_hour"}.get(sku)
    if unit is None:
        return [Unpriced(f"eventhubs_namespace {resource.get('name', '?')}", f"sku {sku!r} is not modelled")]
    maximum = resource.get("maximum_throughput_units", capacity)
    return [
        pricing.line(
            "eventhubs",
            f"{sku.lower()}_{unit}",
            f"Event Hubs {sku} units",
            capacity * HOURS_PER_MONTH,
            note=f"the configured {capacity} all month; auto-inflate up to {maximum} costs more",
        )
    ]


def _namespace_sku(pricing: Pricing) -> str:
    for other in pricing.inputs.resources:
        if other["kind"] == "eventhubs_namespace":
            return str(other.get("sku", "Standard"))
    return "Standard"


@rule("azure", "eventhub")
def eventhub(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    """Ingress events (64 KB units; our records are far smaller): billed on Standard only."""
    topic = str(resource.get("topic", "?"))
    if _namespace_sku(pricing) != "Standard":
        return [pricing.line("eventhubs", "premium_ingress", f"{topic} ingress", Decimal(1), note="included")]
    records = _topic_records(topic, pricing)
    if isinstance(records, Unpriced):
        return [records]
    return [
        pricing.line(
            "eventhubs", "standard_ingress_events", f"{topic} ingress events", records[0], records[1]
        )
    ]


@rule("azure", "storage_table")
def storage_table(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    table = str(resource.get("table") or resource.get("name", "?"))
    replication = str(resource.get("replication", "LRS")).lower()
    entries: Entries = [
        pricing.flow_line(
            "storage_tables",
            "transactions",
            f"{table} writes",
            (f"azure_tables.{table}.writes", f"dynamodb.{table}.write_units"),
            note=AWS_FIGURE,
        ),
        pricing.flow_line(
            "storage_tables",
            "transactions",
            f"{table} reads",
            (f"azure_tables.{table}.reads", f"dynamodb.{table}.read_units"),
            note=AWS_FIGURE,
        ),
    ]
    storage = _table_storage(resource, table, pricing)
    if isinstance(storage, Unpriced):
        return [*entries, storage]
    entries.append(
        pricing.line("storage_tables", f"storage_{replication}", f"{table} storage GB-month", *storage)
    )
    return entries


@rule("azure", "storage_account")
def storage_account(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    """The functions' host account: Event Hubs trigger leases and checkpoints are blob writes, kept
    per partition for each consumer group a function reads in."""
    partitions = {
        str(other.get("topic")): Decimal(str(other.get("partitions", 0)))
        for other in pricing.inputs.resources
        if other["kind"] == "eventhub"
    }
    owned = sum(
        (
            partitions.get(str(other.get("source")), Decimal(0))
            for other in pricing.inputs.resources
            if other["kind"] == "function_app_flex" and other.get("trigger") == "eventhub"
        ),
        Decimal(0),
    )
    return [
        pricing.line(
            "storage_blobs",
            "write_operations",
            f"{resource.get('name', '?')} lease and checkpoint writes",
            owned * LEASE_WRITES_PER_PARTITION_MONTH,
            note="design estimate: one ownership renewal per partition and consumer group every 10 s",
        )
    ]


@rule("azure", "function_app_flex")
def function_app_flex(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    job = str(resource.get("job") or resource.get("name", "?"))
    memory_gb = Decimal(str(resource.get("memory_mb", 0))) / 1024
    instance_gb = Decimal(str(resource.get("instance_memory_mb", 0))) / 1024
    if memory_gb <= 0 or instance_gb <= 0:
        return [Unpriced(f"function_app_flex {job}", "memory_mb and instance_memory_mb must be positive")]
    invocations = (
        Decimal(str(resource["invocations_per_month"])) if "invocations_per_month" in resource else None
    )
    executions = pricing.flow_line(
        "functions_flex",
        "executions",
        f"{job} executions",
        (f"azure_functions.{job}.executions", f"lambda.{job}.requests"),
        invocations=invocations,
        note=AWS_FIGURE,
    )
    work = pricing.flow(
        f"{job} execution time",
        (f"azure_functions.{job}.gb_seconds", f"lambda.{job}.gb_seconds"),
        invocations,
    )
    if isinstance(work, Unpriced):
        return [executions, work]
    # Flex bills the instance's memory for the execution time: seconds at the job's memory × instance GB.
    scale = instance_gb / memory_gb
    return [
        executions,
        pricing.line(
            "functions_flex",
            "gb_second",
            f"{job} GB-seconds ({resource.get('instance_memory_mb')} MB instances)",
            work[0] * scale,
            work[1] * scale,
            note=AWS_FIGURE,
        ),
    ]


@rule("azure", "log_analytics_workspace")
def log_analytics_workspace(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    entries: Entries = []
    for other in pricing.inputs.resources:
        if other["kind"] != "function_app_flex":
            continue
        job = str(other.get("job"))
        entries.append(
            pricing.flow_line(
                "log_analytics",
                "ingestion",
                f"logs {job} ingestion",
                (f"azure.logs.{job}.ingested_bytes", f"logs.{job}.ingested_bytes", "logs.any.ingested_bytes"),
                scale=1 / BYTES_PER_GB,
            )
        )
    days = Decimal(str(resource.get("retention_days", 30)))
    if days > 31:
        entries.append(Unpriced("log retention", f"retention beyond 31 days ({days}) is not modelled"))
    return entries


@rule("azure", "key_vault_key")
def key_vault_key(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    count = counted(resource)
    if isinstance(count, Unpriced):
        return [count]
    return [
        pricing.flow_line(
            "key_vault",
            "operations",
            "Key Vault key operations",
            ("azure.key_vault.operations", "kms.requests"),
            scale=count,
        ),
    ]


@rule("azure", "monitor_metric_alert")
def monitor_metric_alert(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    count = counted(resource)
    if isinstance(count, Unpriced):
        return [count]
    return [pricing.line("monitor", "metric_alert_month", "metric alert time series", count)]
