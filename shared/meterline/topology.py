"""Topics, ledger tables and functions of a deployment, as data: its billing cells (`CELL_*`) and
its billing home (`HOME_*`, SPEC §8).

Cells meter and aggregate the usage of their region and publish statements of their aggregation
states to the home (`publish`); the home applies them once (`ingest`), rates each customer once
(`rate`) and issues the invoices (`close`). The infra code, the function handlers and the local
runtime all read these definitions, so a topic's partitions or a table's keys are written once.
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
CELL_TOPICS = (USAGE_EVENTS, USAGE_REJECTED)
HOME_TOPICS = (BILLING_ALERTS, BILLING_INVOICES)
"""What the home announces: running charges' spend alerts and issued invoices."""
TOPICS = (*CELL_TOPICS, *HOME_TOPICS)


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
"""Every ledger table of a deployment, each name once."""
CELL_TABLES = (USAGE_TABLE, AGGREGATES_TABLE, OUTCOMES_TABLE)
HOME_TABLES = (AGGREGATES_TABLE, CHARGES_TABLE, INVOICES_TABLE)
"""The home's aggregates hold every cell's statements, applied once as partials keyed by (cell,
statement id), and the period close fences; the other tables are the home's alone (the invoice
ledger holds the catalog snapshots an amendment re-rates its period with)."""


class TriggerKind(StrEnum):
    KAFKA = "kafka"
    TABLE_STREAM = "table_stream"
    SCHEDULE = "schedule"
    OBJECT_CREATED = "object_created"
    """Objects created under a prefix of the home's statements bucket (`source` is the prefix)."""


STATEMENTS_PREFIX = "statements/"
"""Where cells write in the home's bucket: `statements/<cell>/<period>/<statement_id>.json` and the
period-final marker `statements/<cell>/<period>/final.json`, create-only; `<cell>` is the cell's
stack name, `<cloud>-<region>`. Each cell's identity may write under its own `<cell>/` only."""


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
PUBLISH = Function(
    "publish",
    TriggerKind.SCHEDULE,
    "cron(*/5 * * * ? *)",  # how far the home's running charges lag behind a cell's usage, at most
    1,
    0,
    1024,
    300,
    reads=(AGGREGATES_TABLE.name,),
    writes=(AGGREGATES_TABLE.name,),  # its cursor: the partials already published
    publishes=(),
)
"""A cell's statements to the home: each new partial once, and after `end + grace` the period-final
marker (objects under `STATEMENTS_PREFIX`, written with the home's per-cell role)."""
INGEST = Function(
    "ingest",
    TriggerKind.OBJECT_CREATED,
    STATEMENTS_PREFIX,
    100,
    5,
    1024,
    120,
    reads=(AGGREGATES_TABLE.name,),
    writes=(AGGREGATES_TABLE.name,),
    publishes=(),
)
"""The home applies each statement once into its aggregates (a create-only write per statement)."""
HOME_RATE = Function(
    "rate",
    TriggerKind.SCHEDULE,
    "cron(*/5 * * * ? *)",
    1000,
    0,
    1024,
    300,
    reads=(AGGREGATES_TABLE.name, CHARGES_TABLE.name),
    writes=(CHARGES_TABLE.name, AGGREGATES_TABLE.name),
    publishes=(BILLING_ALERTS.name,),
)
"""The home's running charges and spend alerts over every cell's statements, once per customer."""
HOME_CLOSE = Function(
    "close",
    TriggerKind.SCHEDULE,
    CLOSE.source,
    1,
    0,
    2048,
    900,
    reads=(AGGREGATES_TABLE.name, INVOICES_TABLE.name),
    writes=(AGGREGATES_TABLE.name, INVOICES_TABLE.name),
    publishes=(BILLING_INVOICES.name,),
)
"""The home issues each period once every cell reported it final, or at its deadline (SPEC §8):
numbered invoices, amendments, and the catalog snapshot each records."""
CELL_FUNCTIONS = (METER, AGGREGATE, PUBLISH)
HOME_FUNCTIONS = (INGEST, HOME_RATE, HOME_CLOSE)
FUNCTIONS = (*CELL_FUNCTIONS, *HOME_FUNCTIONS)
"""Every job of a deployment, each name once (`functions/<job>/` holds its handlers). `RATE` and
`CLOSE` above are the single-cell pipeline's (the local runtime's) stream-fed rate and close."""
