"""How each GCP resource kind of a billing cell turns into priced quantities.

Figures are looked up under GCP names first (`firestore.usage.writes`, `cloud_run.meter.requests`)
and fall back to the AWS figures of the same work (`dynamodb.usage.write_units`,
`lambda.meter.gb_seconds`), noted on the line, until GCP measurements replace them.
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
    rule,
)
from infra.cost.rules_aws import _table_storage, _topic_records

Entries = list[Line | Unpriced]
AWS_FIGURE = "AWS figure of the same work, not yet measured on GCP"
REQUEST_OVERHEAD_SECONDS = Decimal("0.02")
"""Design estimate (2026-11): instance time per push delivery beyond the work itself (decode, ack)."""
DRAIN_RUN_OVERHEAD_SECONDS = Decimal(1)
"""Design estimate (2026-11): instance time per scheduled drain run beyond the work itself (a new
consumer, topic metadata, one fetch to the end of each partition, committed offsets)."""
PUBSUB_MIN_BYTES = Decimal(1000)
"""Pub/Sub bills at least 1000 bytes per message published and per message delivered."""
BYTES_PER_TIB = Decimal(2**40)
PITR_DAYS = Decimal(7)
SOURCES_BUCKET_GB = Decimal("0.05")
"""Design estimate: a handful of versioned source archives of ~1 MB."""


def _item_name(resource: Mapping[str, Any]) -> str:
    return str(
        resource.get("job") or resource.get("table") or resource.get("name") or resource.get("topic", "?")
    )


@rule("gcp", "kms_key")
def kms_key(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    count = counted(resource)
    if isinstance(count, Unpriced):
        return [count]
    return [
        pricing.line("kms", "key_version_month", "Cloud KMS key versions", count),
        pricing.flow_line(
            "kms", "operations", "Cloud KMS operations", ("gcp.kms.operations", "kms.requests")
        ),
    ]


def _capacity(resource: Mapping[str, Any], service: str, label: str, pricing: Pricing) -> Entries:
    vcpus = Decimal(str(resource.get("vcpus", -1)))
    memory = Decimal(str(resource.get("memory_gib", -1)))
    if vcpus <= 0 or memory <= 0:
        return [Unpriced(f"{label} {resource.get('name', '?')}", "vcpus and memory_gib must be positive")]
    return [
        pricing.line(service, "vcpu_hour", f"{label} vCPU-hours", vcpus * HOURS_PER_MONTH),
        pricing.line(service, "memory_gib_hour", f"{label} GiB-hours", memory * HOURS_PER_MONTH),
    ]


@rule("gcp", "managed_kafka_cluster")
def managed_kafka_cluster(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    return _capacity(resource, "managed_kafka", "Kafka cluster", pricing)


@rule("gcp", "managed_kafka_connect_cluster")
def managed_kafka_connect_cluster(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    return _capacity(resource, "managed_kafka_connect", "Kafka Connect cluster", pricing)


@rule("gcp", "managed_kafka_topic")
def managed_kafka_topic(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    """Storage of the topic's retention, every replica (brokers' compute is the cluster's line)."""
    topic = str(resource.get("topic", "?"))
    records = _topic_records(topic, pricing)
    overhead = pricing.constant(f"{topic} record overhead", "msk.record_overhead_bytes")
    if isinstance(records, Unpriced) or isinstance(overhead, Unpriced):
        return [entry for entry in (records, overhead) if isinstance(entry, Unpriced)]
    hours = pricing.inputs.usage.retention_hours.get(topic)
    if hours is None:
        return [Unpriced(f"{topic} storage", "usage.retention_hours has no entry for this topic")]
    fixed_records, records_per_million, payload = records
    replicas = Decimal(str(resource.get("replication_factor", 3)))
    gb = (payload + overhead) / BYTES_PER_GB * replicas * hours / HOURS_PER_MONTH
    return [
        pricing.line(
            "managed_kafka",
            "storage",
            f"{topic} storage GiB-month",
            fixed_records * gb,
            records_per_million * gb,
        )
    ]


@rule("gcp", "pubsub_topic")
def pubsub_topic(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    """Publish and delivery throughput, each at least 1000 bytes per message."""
    topic = str(resource.get("topic", "?"))
    name = str(resource.get("name", topic))
    if topic == "alerts":
        found = pricing.flow(f"{name} messages", ("gcp.pubsub.alerts.messages", "sns.any.publishes"))
        if isinstance(found, Unpriced):
            return [found]
        fixed, per_million = found
        size = PUBSUB_MIN_BYTES * 2 / BYTES_PER_TIB
        return [pricing.line("pubsub", "throughput", f"{name} TiB", fixed * size, per_million * size)]
    records = _topic_records(topic, pricing)
    if isinstance(records, Unpriced):
        return [records]
    fixed_records, records_per_million, payload = records
    size = max(payload + 100, PUBSUB_MIN_BYTES) * 2 / BYTES_PER_TIB  # published once, delivered once
    return [
        pricing.line(
            "pubsub",
            "throughput",
            f"{name} TiB published and delivered",
            fixed_records * size,
            records_per_million * size,
            note="1000-byte minimum per message",
        )
    ]


@rule("gcp", "firestore_collection")
def firestore_collection(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    table = str(resource.get("table") or resource.get("name", "?"))
    writes = pricing.flow_line(
        "firestore",
        "writes",
        f"{table} writes",
        (f"firestore.{table}.writes", f"dynamodb.{table}.write_units"),
        note=AWS_FIGURE,
    )
    entries: Entries = [
        writes,
        pricing.flow_line(
            "firestore",
            "reads",
            f"{table} reads",
            (f"firestore.{table}.reads", f"dynamodb.{table}.read_units"),
            note=AWS_FIGURE,
        ),
    ]
    storage = _table_storage(resource, table, pricing)
    if isinstance(storage, Unpriced):
        return [*entries, storage]
    fixed_gb, gb_per_million = storage
    entries.append(
        pricing.line("firestore", "storage", f"{table} storage GiB-month", fixed_gb, gb_per_million)
    )
    if resource.get("pitr"):
        # PITR keeps 7 days of document versions: the last week's writes of an append-only ledger.
        stored = pricing.figure(f"firestore.{table}.stored_bytes", f"dynamodb.{table}.stored_bytes")
        week_gb = ZERO
        if stored is not None and stored.per == "event":
            week_gb = stored.value * MILLION / BYTES_PER_GB * PITR_DAYS / DAYS_PER_MONTH
        entries.append(
            pricing.line(
                "firestore",
                "pitr_storage",
                f"{table} PITR GiB-month",
                fixed_gb * PITR_DAYS / DAYS_PER_MONTH,
                week_gb,
                note="7 days of versions",
            )
        )
    return entries


@rule("gcp", "cloud_run_function")
def cloud_run_function(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    job = _item_name(resource)
    memory_gib = Decimal(str(resource.get("memory_mb", 0))) / 1024
    cpu = Decimal(str(resource.get("cpu", 1)))
    if memory_gib <= 0:
        return [Unpriced(f"cloud_run_function {job}", "memory_mb must be positive")]
    requests = _requests(resource, job, pricing)
    if isinstance(requests, Unpriced):
        return [requests]
    fixed_requests, requests_per_million = requests
    invocations = fixed_requests if resource.get("trigger") == "scheduler" else None
    work = pricing.flow(
        f"{job} instance time", (f"cloud_run.{job}.gb_seconds", f"lambda.{job}.gb_seconds"), invocations
    )
    if isinstance(work, Unpriced):
        return [work]
    # The work figure is GB-seconds at the job's memory: seconds = GB-s / GB, plus per-request overhead.
    overhead = DRAIN_RUN_OVERHEAD_SECONDS if resource.get("joins") else REQUEST_OVERHEAD_SECONDS
    fixed_s = work[0] / memory_gib + fixed_requests * overhead
    per_million_s = work[1] / memory_gib + requests_per_million * overhead
    note = f"{AWS_FIGURE}; plus {overhead} s per request"
    logs = pricing.flow_line(
        "logging",
        "ingestion",
        f"logs {job} ingestion",
        (f"gcp.logs.{job}.ingested_bytes", f"logs.{job}.ingested_bytes", "logs.any.ingested_bytes"),
        scale=1 / BYTES_PER_GB,
    )
    entries: Entries = [
        pricing.line("cloud_run", "requests", f"{job} requests", fixed_requests, requests_per_million),
        pricing.line(
            "cloud_run", "vcpu_second", f"{job} vCPU-seconds", fixed_s * cpu, per_million_s * cpu, note
        ),
        pricing.line(
            "cloud_run",
            "gib_second",
            f"{job} GiB-seconds",
            fixed_s * memory_gib,
            per_million_s * memory_gib,
            note,
        ),
        logs,
    ]
    if resource.get("joins"):
        entries.append(_join_reads(resource, job, pricing))
    return entries


def _join_reads(resource: Mapping[str, Any], job: str, pricing: Pricing) -> Line | Unpriced:
    """A job that drains a topic reads the usage document of each valid record it joins."""
    table, topic = str(resource["joins"]), str(resource.get("source", "?"))
    records = _topic_records(topic, pricing)
    if isinstance(records, Unpriced):
        return records
    return pricing.line(
        "firestore",
        "reads",
        f"{job} {table} reads (one per {topic} record)",
        records[0],
        records[1],
        note="an upper bound: records meter rejects as invalid are not read",
    )


def _requests(resource: Mapping[str, Any], job: str, pricing: Pricing) -> tuple[Decimal, Decimal] | Unpriced:
    """(requests per month, per million events): push triggers deliver one message or document each;
    a scheduled job (close, and aggregate draining its topic) is called by its schedule alone."""
    if pricing.figures.get(f"cloud_run.{job}.requests") is not None:
        return pricing.flow(f"{job} requests", (f"cloud_run.{job}.requests",))
    trigger, source = resource.get("trigger"), str(resource.get("source", "?"))
    if trigger == "pubsub":
        records = _topic_records(source, pricing)
        return records if isinstance(records, Unpriced) else (records[0], records[1])
    if trigger == "firestore":
        return pricing.flow(
            f"{job} requests", (f"firestore.{source}.writes", f"dynamodb.{source}.write_units")
        )
    if trigger == "scheduler":
        for other in pricing.inputs.resources:
            if other["kind"] == "cloud_scheduler_job" and other.get("name") == job:
                return Decimal(str(other.get("invocations_per_month", 0))), ZERO
    return Unpriced(f"{job} requests", f"no request model for trigger {trigger!r}")


@rule("gcp", "cloud_scheduler_job")
def cloud_scheduler_job(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    return [pricing.line("scheduler", "job_month", f"{resource.get('name', '?')} schedule", Decimal(1))]


@rule("gcp", "storage_bucket")
def storage_bucket(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    return [
        pricing.line(
            "storage",
            "standard_storage",
            f"{resource.get('name', '?')} GiB-month",
            SOURCES_BUCKET_GB,
            note="design estimate: versioned source archives",
        )
    ]


@rule("gcp", "monitoring_alert_policy")
def monitoring_alert_policy(resource: Mapping[str, Any], pricing: Pricing) -> Entries:
    count = counted(resource)
    if isinstance(count, Unpriced):
        return [count]
    return [pricing.line("monitoring", "alert_condition_month", "alert policy conditions", count)]
