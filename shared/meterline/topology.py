"""Topics, ledger tables and functions of one billing cell, as data.

The infra code, the function handlers and the local runtime all read these definitions, so a
topic's partitions or a table's keys are written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    partitions: int
    retention_hours: int
    purpose: str


USAGE_EVENTS = Topic("usage.events", 12, 7 * 24, "CloudEvents usage, keyed by subject (the tenant)")
USAGE_REJECTED = Topic("usage.rejected", 3, 30 * 24, "dead letters: original bytes plus reason headers")
BILLING_ALERTS = Topic("billing.alerts", 3, 30 * 24, "spend threshold crossings, one per threshold")
BILLING_INVOICES = Topic("billing.invoices", 3, 365 * 24, "closed, immutable invoices")
TOPICS = (USAGE_EVENTS, USAGE_REJECTED, BILLING_ALERTS, BILLING_INVOICES)


class StreamView(StrEnum):
    NEW_IMAGE = "NEW_IMAGE"


@dataclass(frozen=True, slots=True)
class Table:
    """Every ledger table is keyed by two strings, ``pk`` and ``sk``, so that one store port
    fits DynamoDB, Firestore and Azure Tables (PartitionKey/RowKey) alike. No table expires items:
    the usage item is the event's dedup record, and SPEC keeps dedup for the ledger's retention."""

    name: str
    partition_key: str
    sort_key: str
    stream: StreamView | None
    purpose: str


USAGE_TABLE = Table(
    "usage",
    "pk",
    "sk",
    StreamView.NEW_IMAGE,
    "one item per accepted event, keyed by a digest of (subject, source, id): the permanent dedup record and "
    "the event's measurements; its stream feeds aggregation",
)
AGGREGATES_TABLE = Table(
    "aggregates",
    "pk",
    "sk",
    StreamView.NEW_IMAGE,
    "append-only partial aggregate states per period and tenant bucket, the stream checkpoints "
    "written in the same transaction, and the period close fences",
)
CHARGES_TABLE = Table(
    "charges",
    "pk",
    "sk",
    None,
    "each tenant's running charges for the open period, and the spend alerts already announced",
)
INVOICES_TABLE = Table(
    "invoices",
    "pk",
    "sk",
    None,
    "closed invoices, written once (conditional put), with their publication state",
)
OUTCOMES_TABLE = Table(
    "outcomes",
    "pk",
    "sk",
    None,
    "one item per delivered record that was not accepted (duplicate or rejected), keyed by its "
    "topic, partition and offset: what the reconciliation counts",
)
TABLES = (USAGE_TABLE, AGGREGATES_TABLE, CHARGES_TABLE, INVOICES_TABLE, OUTCOMES_TABLE)


class TriggerKind(StrEnum):
    KAFKA = "kafka"
    TABLE_STREAM = "table_stream"
    SCHEDULE = "schedule"


@dataclass(frozen=True, slots=True)
class Function:
    job: str
    trigger: TriggerKind
    source: str
    """The topic, table or schedule expression that triggers it."""
    batch_size: int
    batching_window_seconds: int
    memory_mb: int
    timeout_seconds: int
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    publishes: tuple[str, ...]


METER = Function(
    "meter",
    TriggerKind.KAFKA,
    USAGE_EVENTS.name,
    500,
    1,
    1769,
    60,
    reads=(USAGE_TABLE.name,),
    writes=(USAGE_TABLE.name, OUTCOMES_TABLE.name),
    publishes=(USAGE_REJECTED.name,),
)
AGGREGATE = Function(
    "aggregate",
    TriggerKind.TABLE_STREAM,
    USAGE_TABLE.name,
    1000,
    5,
    1024,
    60,
    reads=(AGGREGATES_TABLE.name,),
    writes=(AGGREGATES_TABLE.name,),
    publishes=(),
)
RATE = Function(
    "rate",
    TriggerKind.TABLE_STREAM,
    AGGREGATES_TABLE.name,
    1000,  # running charges are written per tenant per run: larger runs, fewer writes
    60,
    1024,
    120,
    reads=(AGGREGATES_TABLE.name, CHARGES_TABLE.name),
    writes=(CHARGES_TABLE.name, AGGREGATES_TABLE.name),  # window fences, rollups and heads
    publishes=(BILLING_ALERTS.name,),
)
CLOSE = Function(
    "close",
    TriggerKind.SCHEDULE,
    "cron(15 * * * ? *)",
    1,
    0,
    2048,
    900,
    reads=(AGGREGATES_TABLE.name, INVOICES_TABLE.name),
    writes=(AGGREGATES_TABLE.name, INVOICES_TABLE.name),
    publishes=(BILLING_INVOICES.name,),
)
FUNCTIONS = (METER, AGGREGATE, RATE, CLOSE)
