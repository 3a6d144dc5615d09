"""Meter: validate each delivered record, deduplicate it permanently, dead-letter what is bad.

Every record ends in exactly one outcome, and the outcome is a function of the record and of the
first-standing event with its key, so a redelivery reaches the same outcome:

- accepted: its usage item was created, or already carries this record's delivery (a redelivery);
- duplicate: an item with the same key and content stands from another delivery;
- rejected: invalid, or a conflict (same key, other content) — published to ``usage.rejected``
  with the reason and the original bytes.

Duplicates and rejections are also written to the outcomes ledger under their delivery, so that
received = accepted + duplicates + rejected can be reconciled from the ledgers alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from meterline.catalog import Catalog
from meterline.events import EventError, Reason, parse_event
from meterline.metering import Metering
from meterline.ports import Item, Publisher, Store, StoreError
from meterline.records import AcceptedUsage, Delivery
from meterline.topology import OUTCOMES_TABLE, USAGE_REJECTED, USAGE_TABLE


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class DeliveredRecord:
    delivery: Delivery
    key: bytes | None
    value: bytes


@dataclass
class MeterReport:
    accepted: int = 0
    duplicates: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    failed: list[DeliveredRecord] = field(default_factory=list)
    """Records to deliver again: a store or publish call failed for them."""

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())


class PublishError(Exception):
    pass


class Meter:
    def __init__(self, catalog: Catalog, store: Store, publisher: Publisher) -> None:
        self.metering = Metering(catalog.meters_by_type)
        self.store = store
        self.publisher = publisher

    def run(self, records: Iterable[DeliveredRecord]) -> MeterReport:
        """Meter a batch in partition order. After a record fails, the rest of its partition is
        handed back unprocessed, as Lambda redelivers it: were a later record admitted first, a
        conflicting pair could stand the other way round than the partition's order says."""
        report = MeterReport()
        stalled: set[tuple[str, int]] = set()
        for record in records:
            partition = (record.delivery.topic, record.delivery.partition)
            if partition in stalled:
                report.failed.append(record)
                continue
            try:
                outcome, reason = self.meter_one(record)
            except (StoreError, PublishError):
                report.failed.append(record)
                stalled.add(partition)
                continue
            if outcome is Outcome.ACCEPTED:
                report.accepted += 1
            elif outcome is Outcome.DUPLICATE:
                report.duplicates += 1
            else:
                report.rejected_by_reason[reason] += 1
        return report

    def meter_one(self, record: DeliveredRecord) -> tuple[Outcome, str]:
        try:
            event = parse_event(record.value)
            measurements = self.metering.measure(event)
        except EventError as error:
            self.reject(record, error)
            return Outcome.REJECTED, error.reason.value
        usage = AcceptedUsage.of(event, measurements, record.delivery)
        first = self.store.put_new(USAGE_TABLE.name, usage.to_item())
        if first is None or first.get("at") == usage.delivery:
            return Outcome.ACCEPTED, ""
        if first.get("fp") == usage.fingerprint:
            self.store.put(OUTCOMES_TABLE.name, self.outcome_item(record, Outcome.DUPLICATE, "duplicate", ""))
            return Outcome.DUPLICATE, ""
        conflict = EventError(
            Reason.CONFLICT, f"an earlier event with this (subject, source, id) stands ({first.get('at')!s})"
        )
        self.reject(record, conflict)
        return Outcome.REJECTED, Reason.CONFLICT.value

    def reject(self, record: DeliveredRecord, error: EventError) -> None:
        self.store.put(
            OUTCOMES_TABLE.name, self.outcome_item(record, Outcome.REJECTED, error.reason.value, error.detail)
        )
        headers = {
            "reason": error.reason.value.encode(),
            "detail": error.detail.encode("utf-8", "replace"),
            "delivery": str(record.delivery).encode(),
        }
        try:
            # Flushed per reject (rejects are rare): the record counts as handled only once the
            # dead letter is acknowledged, and a frozen Lambda keeps nothing buffered.
            self.publisher.publish(USAGE_REJECTED.name, record.key or b"", record.value, headers)
            self.publisher.flush()
        except Exception as failure:
            raise PublishError(str(failure)) from failure

    @staticmethod
    def outcome_item(record: DeliveredRecord, outcome: Outcome, reason: str, detail: str) -> Item:
        delivery = record.delivery
        return {
            "pk": f"{delivery.topic}|{delivery.partition}",
            "sk": f"{delivery.offset:020d}",
            "outcome": outcome.value,
            "reason": reason,
            "detail": detail[:500],
        }
