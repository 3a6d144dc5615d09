"""The Azure Functions app's adapter (Flex Consumption, Python v2 model): its settings (the jobs on
Azure Tables and the Event Hubs Kafka endpoint) and the decoding of Event Hubs batches. The
handlers pass ``os.environ`` in; nothing here reads it.

The Event Hubs trigger hands a function a batch from ONE partition and checkpoints after the
invocation returns; it cannot report a partial failure. So every handler here raises on the
first store or publish failure and the whole batch runs again (the app's retry policy must
retry without end: once retries run out the checkpoint moves on). A record's delivery is
(event hub, partition id, sequence number), the same on every rerun.

Azure Tables has no change feed, so nothing can trigger on a new usage or partial entity:

- aggregate reads ``usage.events`` itself, in its own consumer group, and asks the usage ledger
  what meter decided for each record (see ``accepted_usage``): a record is aggregated only if its
  usage entity was created by this very delivery. A record meter has not reached yet raises, and
  the batch is tried again later; aggregate therefore trails meter and never overtakes it. The
  aggregator's sequence is the partition id in the high 64 bits and the sequence number below,
  so markers of different partitions never meet. A rerun of a batch starts at the same record
  and finds its marker. One gap is left: if a host dies after the commit but before the
  checkpoint and the next owner's first batch is SHORTER than the committed one, the batch after
  it starts inside the committed range, where no marker is keyed, and is applied again.
- rate runs on a timer and re-rates every tenant of every open period from the period's
  partials: running charges and spend alerts lag by one timer period (alerts stay once each).
- close runs on a timer.

No outbox: an at-least-once "usage.accepted" hub would carry repeats under new sequence
numbers, which the aggregator's markers cannot tell apart from new usage.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from meterline.adapters.usage_join import NotYetMeteredError as NotYetMeteredError
from meterline.adapters.usage_join import UnreadableUsageError as UnreadableUsageError
from meterline.adapters.usage_join import accepted_usage as accepted_usage
from meterline.adapters.usage_join import stream_sequence
from meterline.pipeline.aggregate import StreamRecord
from meterline.pipeline.meter import DeliveredRecord
from meterline.pipeline.processing import AggregateProcessor, MeterProcessor, log_set_aside, log_settled
from meterline.ports import Publisher, Store
from meterline.records import Delivery
from meterline.settings import CellSettings, KafkaAuth, SettingsError, env
from meterline.topology import USAGE_EVENTS

if TYPE_CHECKING:
    from meterline.bootstrap import Jobs
    from meterline.pipeline.meter import Meter


class TriggerError(ValueError):
    """The batch is not of the shape this function is deployed for (a wiring mistake)."""


DEFAULT_CONSUMER_GROUP = "$Default"
AGGREGATE_CONSUMER_GROUP = "aggregate"


@dataclass(frozen=True, slots=True)
class HubTrigger:
    """What an Event Hubs-triggered function reads: one hub, in one consumer group."""

    hub: str
    consumer_group: str


HUB_TRIGGERS = {
    "meter": HubTrigger(USAGE_EVENTS.name, DEFAULT_CONSUMER_GROUP),
    "aggregate": HubTrigger(USAGE_EVENTS.name, AGGREGATE_CONSUMER_GROUP),
}
"""The jobs with an Event Hubs trigger. The functions' triggers and the cell's consumer groups and
receive rights are all read from here."""
TIMER_SCHEDULES = {"rate": "0 */5 * * * *", "close": "0 15 * * * *"}
"""The other jobs run on timers (NCRONTAB, seconds first): rate every five minutes, which is how far
running charges and spend alerts may lag behind usage; close hourly at a quarter past, as on AWS."""


@dataclass(frozen=True, kw_only=True)
class AzureSettings(CellSettings):
    """What a function of the cell's apps reads from its app settings."""

    cloud: ClassVar[str] = "azure"
    what: ClassVar[str] = "app setting"

    tables_endpoint: str = env("METERLINE_TABLES_ENDPOINT", "")
    """``https://<account>.table.core.windows.net``, reached with the app's managed identity."""
    tables_connection_string: str = env("METERLINE_TABLES_CONNECTION_STRING", "")
    """Azurite's connection string instead (a local cell only)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.tables_endpoint or self.tables_connection_string):
            raise SettingsError(
                "the app setting METERLINE_TABLES_ENDPOINT (or METERLINE_TABLES_CONNECTION_STRING) is missing"
            )

    def open_store(self) -> Store:
        from azure.data.tables import TableServiceClient

        from meterline.adapters.tables import TablesStore  # type: ignore[import-not-found,unused-ignore]

        if self.tables_connection_string:
            client = TableServiceClient.from_connection_string(self.tables_connection_string)
        else:
            from azure.identity import DefaultAzureCredential  # type: ignore[import-untyped,import-not-found,unused-ignore]

            client = TableServiceClient(self.tables_endpoint, credential=DefaultAzureCredential())
        return TablesStore(client, self.table_prefix)

    def open_publisher(self) -> Publisher:
        from meterline.adapters.kafka import KafkaPublisher

        bootstrap = self.require_kafka()
        if self.kafka_auth is KafkaAuth.NONE:
            return KafkaPublisher({"bootstrap.servers": bootstrap})
        from azure.identity import DefaultAzureCredential  # type: ignore[import-untyped,import-not-found,unused-ignore]

        return KafkaPublisher(event_hubs_oauth_config(bootstrap, DefaultAzureCredential()))


class TokenCredential(Protocol):
    def get_token(self, *scopes: str) -> Any: ...


def event_hubs_oauth_config(bootstrap: str, credential: TokenCredential) -> dict[str, Any]:
    """The Event Hubs Kafka endpoint with Microsoft Entra tokens for the namespace (OAUTHBEARER)."""
    scope = f"https://{bootstrap.rsplit(':', 1)[0]}/.default"

    def token(_: str) -> tuple[str, float]:
        access = credential.get_token(scope)
        return access.token, float(access.expires_on)

    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "OAUTHBEARER",
        "oauth_cb": token,
    }


class HubEvent(Protocol):
    """What a function reads of ``azure.functions.EventHubEvent``."""

    @property
    def sequence_number(self) -> int | None: ...

    @property
    def partition_key(self) -> str | None: ...

    @property
    def metadata(self) -> Mapping[str, Any] | None: ...

    def get_body(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class HubRecord:
    delivery: Delivery
    key: bytes | None
    value: bytes

    @property
    def sequence(self) -> str:
        """The aggregator's sequence: partition id above, sequence number below."""
        return stream_sequence(self.delivery)


def hub_records(event_hub: str, events: Sequence[HubEvent]) -> list[HubRecord]:
    """One partition's batch, in order, as delivered records."""
    if not events:
        return []
    partition = partition_of(events[0])
    records = []
    for event in events:
        if event.sequence_number is None:
            raise TriggerError(f"an event of {event_hub} partition {partition} without a sequence number")
        key = event.partition_key
        records.append(
            HubRecord(
                Delivery(event_hub, partition, event.sequence_number),
                None if key is None else key.encode(),
                event.get_body(),
            )
        )
    return records


def partition_of(event: HubEvent) -> int:
    context = (event.metadata or {}).get("PartitionContext") or {}
    partition = context.get("PartitionId") if isinstance(context, Mapping) else None
    try:
        return int(str(partition))
    except ValueError:
        raise TriggerError(
            f"the batch's PartitionContext names no numeric PartitionId: {context!r}"
        ) from None


# Trigger processors: decode the batch, process it under the shared failure policy
# (pipeline.processing); raising runs the whole batch again (no partial batch failures here).


def meter_batch(events: Sequence[HubEvent], meter: Meter, logger: logging.Logger) -> None:
    """meter's Event Hubs batch: the first store or publish failure raises, the partition stops
    there and the whole batch runs again; records already metered reach the same outcome. A record
    that keeps failing (not an outage) is dead-lettered once it has had its attempts."""
    processor = MeterProcessor(meter)
    for record in hub_records(HUB_TRIGGERS["meter"].hub, events):
        settled = processor.settle(DeliveredRecord(record.delivery, record.key, record.value))
        log_settled(logger, record.delivery, settled)
    meter.publisher.flush()


def aggregate_batch(events: Sequence[HubEvent], cell: Jobs, logger: logging.Logger) -> None:
    """aggregate's Event Hubs batch, joined with what meter wrote. All or nothing, as on AWS: the
    partials and the batch marker commit in one transaction, and a rerun of the batch starts at the
    same record, finds the marker and applies nothing twice. A record meter has not reached yet
    raises (the batch runs again later); a usage item that cannot be read back is set aside."""
    aggregator = cell.aggregator
    before = aggregator.dead_lettered
    records = []
    for record in hub_records(HUB_TRIGGERS["aggregate"].hub, events):
        try:
            usage = accepted_usage(cell.store, cell.metering, record)
        except UnreadableUsageError as error:
            aggregator.set_aside(
                record.sequence, f"unreadable usage item: {error}", None, str(record.delivery)
            )
            continue
        if usage is not None:
            records.append(StreamRecord(record.sequence, usage))
    AggregateProcessor(aggregator).run(records)
    log_set_aside(logger, aggregator.dead_lettered - before)
