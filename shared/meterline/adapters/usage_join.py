"""What meter made of a delivered record, read back from the usage ledger.

A job that reads ``usage.events`` itself (aggregate on GCP and on Azure, which have no change
feed to trigger on) must aggregate exactly the records meter accepted, each once. Meter writes
the usage item with the delivery that created it (``at``), so the record whose delivery created
the item is its one accepted delivery; a duplicate or a conflict finds an item with another
delivery, an invalid record never gets one. A valid record with no item yet has not been metered,
unless meter dead-lettered it (its outcome says so). Records are read as meter reads them
(``records.usage_record``), so both take the same records for invalid.
"""

from __future__ import annotations

from typing import Protocol

from meterline.events import EventError
from meterline.metering import Metering
from meterline.pipeline.outcomes import OutcomesLedger
from meterline.pipeline.usage_ledger import UsageLedger
from meterline.ports import Store
from meterline.records import AcceptedUsage, Delivery, usage_record


class NotYetMeteredError(Exception):
    """The reader reached a valid record before meter did: stop before it and try again later."""


class ForeignDeliveryError(Exception):
    """The usage item was created by a delivery of another topic: meter did not see the record's
    Kafka position, so no delivery of this topic can ever be told apart as the accepted one."""


class UnreadableUsageError(Exception):
    """The usage item this delivery created cannot be read back: the aggregator sets it aside."""


class DeliveredValue(Protocol):
    @property
    def delivery(self) -> Delivery: ...

    @property
    def value(self) -> bytes: ...


def stream_sequence(delivery: Delivery) -> str:
    """The aggregator's sequence for a record read from a topic: the partition in the high 64
    bits and the offset below, so that batch markers of different partitions never meet."""
    return str((delivery.partition << 64) | delivery.offset)


def accepted_usage(store: Store, metering: Metering, record: DeliveredValue) -> AcceptedUsage | None:
    """The record's usage if this very delivery created it; None if meter rejected it or counted
    it as a duplicate. Raises NotYetMeteredError for a valid record meter has not reached, and
    UnreadableUsageError for a usage item that cannot be read."""
    try:
        usage, _ = usage_record(metering, record.value, str(record.delivery))
    except EventError:
        return None
    stored = UsageLedger(store).item(usage.key)
    if stored is None:
        outcome = OutcomesLedger(store).get(record.delivery)
        if outcome is not None and outcome.get("outcome") == "rejected":
            return None  # valid, but dead-lettered after failing every attempt
        raise NotYetMeteredError(f"{record.delivery} is not metered yet")
    creator = str(stored.get("at"))
    if creator == str(record.delivery):
        try:
            return AcceptedUsage.from_item(stored)
        except Exception as error:
            raise UnreadableUsageError(f"{type(error).__name__}: {error}") from error
    if not creator.startswith(f"{record.delivery.topic}|"):
        raise ForeignDeliveryError(
            f"the usage of {record.delivery} was metered from {creator}, not from a position of"
            f" {record.delivery.topic}: meter must be given the Kafka topic, partition and offset"
        )
    return None
