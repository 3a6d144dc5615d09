"""How each AWS resource kind of a billing cell turns into priced quantities.

GCP and Azure rules live beside this module (`rules_gcp.py`, ...), registered with the same
`@rule(cloud, kind)` and priced from their own rows of prices.csv.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from infra.cost.model import (
    BYTES_PER_GB,
    DAYS_PER_MONTH,
    HOURS_PER_MONTH,
    MILLION,
    ZERO,
    Line,
    Pricing,
    Unpriced,
    counted,
    describe,
    rule,
)

Entries = list[Line | Unpriced]


@rule("aws", "msk_serverless_cluster")
def msk_cluster(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    count = counted(resource)
    if isinstance(count, Unpriced):
        return [count]
    return [
        pricing.line(
            "msk", "serverless_cluster_hour", "MSK Serverless cluster-hours", count * HOURS_PER_MONTH
        )
    ]


@rule("aws", "msk_partition")
def msk_partitions(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    """Partition-hours, and the traffic and storage of the topic these partitions hold."""
    topic = str(resource.get("topic", "?"))
    count = counted(resource)
    if isinstance(count, Unpriced):
        return [count]
    entries: Entries = [
        pricing.line("msk", "serverless_partition_hour", f"{topic} partition-hours", count * HOURS_PER_MONTH)
    ]
    records = _topic_records(topic, pricing)
    if isinstance(records, Unpriced):
        return [*entries, records]
    overhead = pricing.constant(f"{topic} record overhead", "msk.record_overhead_bytes")
    reads = pricing.constant(f"{topic} consumer reads", "msk.consumer_reads_per_record")
    if isinstance(overhead, Unpriced) or isinstance(reads, Unpriced):
        return [*entries, *(e for e in (overhead, reads) if isinstance(e, Unpriced))]
    fixed_records, records_per_million, payload_bytes = records
    record_gb = (payload_bytes + overhead) / BYTES_PER_GB
    fixed_gb, gb_per_million = fixed_records * record_gb, records_per_million * record_gb
    entries.append(pricing.line("msk", "serverless_data_in", f"{topic} GB in", fixed_gb, gb_per_million))
    entries.append(
        pricing.line(
            "msk", "serverless_data_out", f"{topic} GB out", fixed_gb * reads, gb_per_million * reads
        )
    )
    hours = pricing.inputs.usage.retention_hours.get(topic)
    if hours is None:
        entries.append(Unpriced(f"{topic} storage", "usage.retention_hours has no entry for this topic"))
        return entries
    # Steady state: a topic holds `retention` worth of its monthly ingress.
    months = hours / HOURS_PER_MONTH
    entries.append(
        pricing.line(
            "msk",
            "serverless_storage",
            f"{topic} storage GB-month",
            fixed_gb * months,
            gb_per_million * months,
        )
    )
    return entries


def _topic_records(topic: str, pricing: Pricing) -> tuple[Decimal, Decimal, Decimal] | Unpriced:
    """(records per month, records per million events, payload bytes per record) of a known topic."""
    usage = pricing.inputs.usage
    item = f"{topic} traffic"
    if topic == "usage.events":
        return ZERO, MILLION, usage.avg_event_bytes
    if topic == "usage.rejected":
        rejected = pricing.constant(item, "pipeline.rejected_fraction")
        return (
            rejected if isinstance(rejected, Unpriced) else (ZERO, MILLION * rejected, usage.avg_event_bytes)
        )
    if topic == "billing.alerts":
        per_tenant = pricing.constant(item, "pipeline.alerts_per_tenant_month")
        size = pricing.constant(item, "pipeline.alert_bytes")
        if isinstance(per_tenant, Unpriced) or isinstance(size, Unpriced):
            return per_tenant if isinstance(per_tenant, Unpriced) else size  # type: ignore[return-value]
        return usage.tenants * per_tenant, ZERO, size
    if topic == "billing.invoices":
        size = pricing.constant(item, "pipeline.invoice_bytes")
        # One invoice per tenant and calendar month (SPEC §3).
        return size if isinstance(size, Unpriced) else (usage.tenants, ZERO, size)
    return Unpriced(item, f"no volume model for topic {topic!r}")


@rule("aws", "dynamodb_table")
def dynamodb_table(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    # `table` is the logical name (usage, aggregates, ...) that figures are kept under; `name` is physical.
    name = str(resource.get("table") or resource.get("name", "?"))
    if resource.get("billing") != "on_demand":
        return [
            Unpriced(
                f"dynamodb_table {name}", f"billing {resource.get('billing')!r}: only on_demand is modelled"
            )
        ]
    figure = f"dynamodb.{name}"
    entries: Entries = [
        pricing.flow_line(
            "dynamodb", "on_demand_write_request_unit", f"{name} writes", (f"{figure}.write_units",)
        ),
        pricing.flow_line(
            "dynamodb", "on_demand_read_request_unit", f"{name} reads", (f"{figure}.read_units",)
        ),
    ]
    storage = _table_storage(resource, name, pricing)
    if isinstance(storage, Unpriced):
        entries.append(storage)
    else:
        fixed_gb, gb_per_million = storage
        entries.append(
            pricing.line("dynamodb", "storage", f"{name} storage GB-month", fixed_gb, gb_per_million)
        )
        if resource.get("pitr"):
            entries.append(
                pricing.line("dynamodb", "pitr_storage", f"{name} PITR GB-month", fixed_gb, gb_per_million)
            )
    if resource.get("stream"):
        entries.append(
            pricing.flow_line(
                "dynamodb",
                "stream_read_request_lambda",
                f"{name} stream reads",
                (f"{figure}.write_units",),
                note="free: the stream is read by a Lambda trigger",
            )
        )
    return entries


def _table_storage(
    resource: Mapping[str, Any], name: str, pricing: Pricing
) -> tuple[Decimal, Decimal] | Unpriced:
    """(GB-month, GB-month per million events) held at steady state."""
    item = f"{name} storage"
    stored = pricing.figure(f"dynamodb.{name}.stored_bytes")
    if stored is None:
        return Unpriced(item, f"no measured or estimated figure 'dynamodb.{name}.stored_bytes'")
    if stored.per == "tenant":
        return stored.value * pricing.inputs.usage.tenants / BYTES_PER_GB, ZERO
    if stored.per != "event":
        return Unpriced(item, f"figure {stored.name!r} is counted per {stored.per}, not per event or tenant")
    days: Decimal | Unpriced
    if "retention_days" in resource:
        days = Decimal(str(resource["retention_days"]))
    else:
        days = pricing.constant(item, f"dynamodb.{name}.retention_days")
    if isinstance(days, Unpriced):
        return days
    # Each million events occupies its bytes for `days`; at steady state that is the table's size.
    return ZERO, stored.value * MILLION / BYTES_PER_GB * days / DAYS_PER_MONTH


@rule("aws", "lambda_function")
def lambda_function(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    job = str(resource.get("job") or resource.get("name", "?"))
    architecture = str(resource.get("architecture", "x86_64"))
    invocations = _scheduled_invocations(job, pricing)
    return [
        pricing.flow_line(
            "lambda", "requests", f"{job} requests", (f"lambda.{job}.requests",), invocations=invocations
        ),
        pricing.flow_line(
            "lambda",
            f"gb_second_{architecture}",
            f"{job} GB-seconds ({architecture})",
            (f"lambda.{job}.gb_seconds",),
            invocations=invocations,
        ),
    ]


def _scheduled_invocations(job: str, pricing: Pricing) -> Decimal | None:
    """A scheduled job's invocations a month; the home's ingest's: statements over its batch fill."""
    if job == "ingest":
        statements = _statements_per_month(pricing)
        fill = pricing.figure("home.statements_per_ingest_invocation")
        if isinstance(statements, Unpriced) or fill is None or fill.value <= 0:
            return None
        return statements / fill.value
    for resource in pricing.inputs.resources:
        if resource["kind"] == "scheduler_schedule" and resource.get("name") == job:
            return Decimal(str(resource.get("invocations_per_month", 0)))
    return None


@rule("aws", "scheduler_schedule")
def scheduler_schedule(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    invocations = Decimal(str(resource.get("invocations_per_month", 0)))
    return [pricing.line("scheduler", "invocations", f"{resource.get('name', '?')} schedule", invocations)]


@rule("aws", "kms_key")
def kms_key(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    count = counted(resource)
    if isinstance(count, Unpriced):
        return [count]
    return [
        pricing.line("kms", "key_month", "customer managed keys", count),
        pricing.flow_line("kms", "requests", "KMS requests", ("kms.requests",)),
    ]


@rule("aws", "cloudwatch_log_group")
def cloudwatch_log_group(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    key = str(resource.get("job") or _job_logging_to(str(resource.get("name", "?")), pricing))
    label = f"logs {key}"
    names = (f"logs.{key}.ingested_bytes", "logs.any.ingested_bytes")
    ingested = pricing.flow_line(
        "cloudwatch", "logs_ingestion", f"{label} ingestion", names, scale=1 / BYTES_PER_GB
    )
    if isinstance(ingested, Unpriced):
        return [ingested]
    if "retention_days" not in resource:
        reason = "no retention_days: the group keeps logs forever, so its storage has no steady state"
        return [ingested, Unpriced(f"{label} storage", reason)]
    months = Decimal(str(resource["retention_days"])) / DAYS_PER_MONTH
    stored = pricing.line(
        "cloudwatch",
        "logs_storage",
        f"{label} storage GB-month",
        ingested.fixed_units * months,
        ingested.units_per_million * months,
    )
    return [ingested, stored]


def _job_logging_to(group: str, pricing: Pricing) -> str:
    """The job of the function whose log group this is (/aws/lambda/<function name>), else the group."""
    for resource in pricing.inputs.resources:
        if resource["kind"] == "lambda_function" and group == f"/aws/lambda/{resource.get('name')}":
            return str(resource.get("job") or resource.get("name"))
    return group


@rule("aws", "cloudwatch_alarm")
def cloudwatch_alarm(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    count = counted(resource)
    return (
        [count]
        if isinstance(count, Unpriced)
        else [pricing.line("cloudwatch", "alarm_month", "alarms", count)]
    )


@rule("aws", "cloudwatch_dashboard")
def cloudwatch_dashboard(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    count = counted(resource)
    if isinstance(count, Unpriced):
        return [count]
    return [pricing.line("cloudwatch", "dashboard_month", "dashboards", count)]


@rule("aws", "nat_gateway")
def nat_gateway(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    count = counted(resource)
    if isinstance(count, Unpriced):
        return [count]
    entries: Entries = [pricing.line("vpc", "nat_gateway_hour", "NAT gateway-hours", count * HOURS_PER_MONTH)]
    if count > 0:
        entries.append(
            pricing.flow_line(
                "vpc",
                "nat_gateway_data",
                "NAT GB processed",
                ("nat.processed_bytes",),
                scale=1 / BYTES_PER_GB,
            )
        )
    return entries


@rule("aws", "vpc_endpoint")
def vpc_endpoint(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    count = counted(resource)
    if isinstance(count, Unpriced):
        return [count]
    kind = str(resource.get("type", "?"))
    if kind == "Gateway":
        return [pricing.line("vpc", "gateway_endpoint", "gateway endpoints", count, note="no charge")]
    if kind != "Interface":
        return [Unpriced(describe(resource), f"endpoint type {kind!r} is neither Gateway nor Interface")]
    zones = resource.get("availability_zones", resource.get("azs"))
    azs = Decimal(str(zones if zones is not None else 1))
    note = "" if zones is not None else "availability_zones not given: 1 AZ per endpoint assumed"
    return [
        pricing.line(
            "vpc",
            "interface_endpoint_hour",
            "interface endpoint AZ-hours",
            count * azs * HOURS_PER_MONTH,
            note=note,
        ),
        pricing.flow_line(
            "vpc",
            "interface_endpoint_data",
            "interface endpoint GB processed",
            ("vpc_endpoint.interface.processed_bytes",),
            scale=1 / BYTES_PER_GB,
        ),
    ]


@rule("aws", "sqs_queue")
def sqs_queue(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    count = counted(resource)
    if isinstance(count, Unpriced):
        return [count]
    name = str(resource.get("name", "?"))
    return [
        pricing.flow_line(
            "sqs",
            "standard_requests",
            f"{name} requests",
            (f"sqs.{name}.requests", "sqs.any.requests"),
            scale=count,
        )
    ]


@rule("aws", "data_transfer")
def data_transfer(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    direction = str(resource.get("direction", "?"))
    return [
        pricing.flow_line(
            "data_transfer",
            direction,
            f"data transfer {direction}",
            (f"data_transfer.{direction}.bytes",),
            scale=1 / BYTES_PER_GB,
        )
    ]


@rule("aws", "lambda_layer")
def lambda_layer(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    count = counted(resource)
    if isinstance(count, Unpriced):
        return [count]
    return [pricing.line("lambda", "layer", f"layer {resource.get('name', '?')}", count, note="no charge")]


@rule("aws", "lambda_event_source_mapping")
def lambda_event_source_mapping(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    """Free in the default mode; provisioned mode bills event poller units (EPU) by the hour."""
    name = str(resource.get("name", "?"))
    pollers = resource.get("provisioned_pollers")
    if not pollers:
        return [
            pricing.line("lambda", "event_source_mapping", f"{name} trigger", Decimal(1), note="no charge")
        ]
    minimum = Decimal(str(pollers.get("minimum", 1))) if isinstance(pollers, Mapping) else Decimal(-1)
    if minimum < 0:
        return [Unpriced(f"{name} pollers", f"provisioned_pollers {pollers!r} has no minimum")]
    return [
        pricing.line(
            "lambda",
            "event_poller_unit_hour",
            f"{name} provisioned pollers",
            minimum * HOURS_PER_MONTH,
            note=f"the minimum of {minimum} all month; scaling to {pollers.get('maximum', '?')} costs more",
        )
    ]


@rule("aws", "s3_bucket")
def s3_bucket(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    name = str(resource.get("name", "?"))
    return [
        pricing.flow_line(
            "s3",
            "standard_storage",
            f"{name} storage GB-month",
            (f"s3.{name}.stored_gb_month", "s3.any.stored_gb_month"),
        ),
        pricing.flow_line(
            "s3", "put_requests", f"{name} PUT requests", (f"s3.{name}.put_requests", "s3.any.put_requests")
        ),
    ]


@rule("aws", "sns_topic")
def sns_topic(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    name = str(resource.get("name", "?"))
    count = counted(resource)
    if isinstance(count, Unpriced):
        return [count]
    return [
        pricing.flow_line(
            "sns",
            "publishes",
            f"{name} publishes",
            (f"sns.{name}.publishes", "sns.any.publishes"),
            scale=count,
        )
    ]


@rule("aws", "statements_bucket")
def statements_bucket(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    """The home's statements: every cell PUTs each statement once, ingest GETs it once, and the
    bucket keeps it `retention_days`. The home pays all of it (S3 bills the bucket owner)."""
    name = str(resource.get("name", "?"))
    statements = _statements_per_month(pricing)
    size = pricing.constant(f"{name} storage", "home.statement_bytes")
    if isinstance(statements, Unpriced) or isinstance(size, Unpriced):
        return [statements if isinstance(statements, Unpriced) else size]  # type: ignore[list-item]
    months = Decimal(str(resource.get("retention_days", 0))) / DAYS_PER_MONTH
    note = f"{statements:,.0f} statements a month from {resource.get('cells', '?')} cells"
    return [
        pricing.line("s3", "put_requests", f"{name} PUT requests (cells)", statements, note=note),
        pricing.line("s3", "get_requests", f"{name} GET requests (ingest)", statements, note=note),
        pricing.line(
            "s3", "standard_storage", f"{name} storage GB-month", statements * size / BYTES_PER_GB * months
        ),
    ]


def _statements_per_month(pricing: Pricing) -> Decimal | Unpriced:
    """Statements every cell sends the home in a month (the home's cost inputs count its cells)."""
    cells = next((r.get("cells") for r in pricing.inputs.resources if r["kind"] == "statements_bucket"), None)
    if cells is None:
        return Unpriced("statements", "no statements_bucket resource names the home's cells")
    rate = pricing.constant("statements", "home.statements_per_cell_hour")
    if isinstance(rate, Unpriced):
        return rate
    return Decimal(str(cells)) * rate * HOURS_PER_MONTH
