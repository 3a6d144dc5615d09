"""Wiring for the Azure Functions app (Flex Consumption, Python v2 model): the jobs on Azure
Tables and the Event Hubs Kafka endpoint, and the decoding of Event Hubs batches. The handlers
pass ``os.environ`` in; nothing here reads it.

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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from meterline.adapters.usage_join import NotYetMeteredError as NotYetMeteredError
from meterline.adapters.usage_join import UnreadableUsageError as UnreadableUsageError
from meterline.adapters.usage_join import accepted_usage as accepted_usage
from meterline.adapters.usage_join import stream_sequence
from meterline.catalog import Catalog, load_catalog
from meterline.ports import Publisher
from meterline.records import Delivery
from meterline.topology import USAGE_EVENTS


class SettingsError(ValueError):
    pass


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
TIMER_SCHEDULES = {"rate": "0 */5 * * * *", "close": "0 15 * * * *", "publish": "0 */5 * * * *"}
"""The other jobs run on timers (NCRONTAB, seconds first): rate every five minutes, which is how far
running charges and spend alerts may lag behind usage; close hourly at a quarter past, as on AWS;
publish every five minutes, as ``topology.PUBLISH`` says. A deployed cell runs meter, aggregate
and publish; rate and close are the single-cell pipeline's (the local runtime's)."""


@dataclass(frozen=True)
class Settings:
    catalog_path: Path
    table_prefix: str
    grace: timedelta
    tables_endpoint: str = ""
    """``https://<account>.table.core.windows.net``, reached with the app's managed identity."""
    tables_connection_string: str = ""
    kafka_bootstrap: str = ""
    """``<namespace>.servicebus.windows.net:9093``"""
    kafka_connection_string: str = ""
    """When set, SASL PLAIN with ``$ConnectionString``; else OAUTHBEARER with the managed identity."""
    kafka_plaintext: bool = False
    """METERLINE_KAFKA_AUTH=none: a plaintext listener, the local runtime's broker (never Event Hubs)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str], package_root: Path) -> Settings:
        prefix = env.get("METERLINE_TABLE_PREFIX")
        if not prefix:
            raise SettingsError("the app setting METERLINE_TABLE_PREFIX is missing")
        try:
            grace_hours = float(env.get("METERLINE_GRACE_HOURS", "1"))
        except ValueError:
            raise SettingsError("METERLINE_GRACE_HOURS must be a number of hours") from None
        auth = env.get("METERLINE_KAFKA_AUTH", "")
        if auth not in ("", "none"):
            raise SettingsError(f"METERLINE_KAFKA_AUTH is none (a local broker) or unset, not {auth!r}")
        return cls(
            catalog_path=package_root / env.get("METERLINE_CATALOG", "catalog.yaml"),
            table_prefix=prefix,
            grace=timedelta(hours=grace_hours),
            tables_endpoint=env.get("METERLINE_TABLES_ENDPOINT", ""),
            tables_connection_string=env.get("METERLINE_TABLES_CONNECTION_STRING", ""),
            kafka_bootstrap=env.get("METERLINE_KAFKA_BOOTSTRAP", ""),
            kafka_connection_string=env.get("METERLINE_EVENTHUB_CONNECTION_STRING", ""),
            kafka_plaintext=auth == "none",
        )


class Wiring:
    """Built once per worker process; clients are reused across invocations."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self.settings.catalog_path)

    @cached_property
    def store(self) -> Any:
        from azure.data.tables import TableServiceClient

        from meterline.adapters.tables import TablesStore  # type: ignore[import-not-found,unused-ignore]

        settings = self.settings
        if settings.tables_connection_string:
            client = TableServiceClient.from_connection_string(settings.tables_connection_string)
        elif settings.tables_endpoint:
            from azure.identity import DefaultAzureCredential  # type: ignore[import-untyped,import-not-found,unused-ignore]

            client = TableServiceClient(settings.tables_endpoint, credential=DefaultAzureCredential())
        else:
            raise SettingsError("set METERLINE_TABLES_ENDPOINT (or METERLINE_TABLES_CONNECTION_STRING)")
        return TablesStore(client, settings.table_prefix)

    @cached_property
    def publisher(self) -> Publisher:
        from meterline.adapters.kafka import KafkaPublisher

        settings = self.settings
        if not settings.kafka_bootstrap:
            raise SettingsError("the app setting METERLINE_KAFKA_BOOTSTRAP is missing")
        if settings.kafka_plaintext:
            return KafkaPublisher({"bootstrap.servers": settings.kafka_bootstrap})
        if settings.kafka_connection_string:
            return KafkaPublisher(
                event_hubs_plain_config(settings.kafka_bootstrap, settings.kafka_connection_string)
            )
        from azure.identity import DefaultAzureCredential  # type: ignore[import-untyped,import-not-found,unused-ignore]

        return KafkaPublisher(event_hubs_oauth_config(settings.kafka_bootstrap, DefaultAzureCredential()))


class TokenCredential(Protocol):
    def get_token(self, *scopes: str) -> Any: ...


def event_hubs_plain_config(bootstrap: str, connection_string: str) -> dict[str, Any]:
    """The Event Hubs Kafka endpoint with a namespace connection string (SASL PLAIN)."""
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "PLAIN",
        "sasl.username": "$ConnectionString",
        "sasl.password": connection_string,
    }


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


def managed_identity_token(audience: str, client_id: str | None) -> Callable[[], str]:
    """The function's managed identity's Entra ID token for ``audience`` (the home's OIDC provider's
    client id), fresh per call: what the home's statements role trusts an Azure cell's publish by."""
    from azure.identity import ManagedIdentityCredential

    credential = ManagedIdentityCredential(client_id=client_id)
    return lambda: credential.get_token(f"{audience}/.default").token
