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
from typing import NamedTuple

from meterline.catalog import Catalog
from meterline.events import EventError, Reason, digest, read_event
from meterline.markets import LOCAL, Market
from meterline.metering import Metering
from meterline.ports import Item, Publisher, Store, StoreError
from meterline.records import AcceptedUsage, Delivery
from meterline.topology import OUTCOMES_TABLE, USAGE_REJECTED, USAGE_TABLE


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class DeliveredRecord(NamedTuple):
    delivery: Delivery
    key: bytes | None
    value: bytes


class Rejection(NamedTuple):
    delivery: Delivery
    reason: str


class Stall(NamedTuple):
    """The failure that stopped a partition at this delivery."""

    delivery: Delivery
    error: Exception


@dataclass
class MeterReport:
    accepted: int = 0
    duplicates: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    failed: list[DeliveredRecord] = field(default_factory=list)
    """Records to deliver again: a store or publish call failed for them (or, as ``run`` was told,
    any call), or for an earlier record of their partition."""
    rejections: list[Rejection] = field(default_factory=list)
    stalls: list[Stall] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())


class PublishError(Exception):
    pass


_ACCEPTED, _DUPLICATE = Outcome.ACCEPTED, Outcome.DUPLICATE


class Meter:
    def __init__(self, catalog: Catalog, store: Store, publisher: Publisher, market: Market = LOCAL) -> None:
        self.metering = Metering(catalog.meters_by_type, market)
        self.store = store
        self.publisher = publisher

    def run(
        self,
        records: Iterable[DeliveredRecord],
        retry_on: type[Exception] | tuple[type[Exception], ...] = (StoreError, PublishError),
    ) -> MeterReport:
        """Meter a batch in partition order. After a record fails, the rest of its partition is
        handed back unprocessed, as Lambda redelivers it: were a later record admitted first, a
        conflicting pair could stand the other way round than the partition's order says.

        ``retry_on`` names the failures that hand a record back; any other propagates."""
        report = MeterReport()
        accepted = duplicates = 0
        stalled: set[tuple[str, int]] = set()
        for record in records:
            delivery = record.delivery
            if stalled and (delivery.topic, delivery.partition) in stalled:
                report.failed.append(record)
                continue
            try:
                outcome, reason = self.meter_one(record)
            except retry_on as error:
                report.failed.append(record)
                report.stalls.append(Stall(delivery, error))
                stalled.add((delivery.topic, delivery.partition))
                continue
            if outcome is _ACCEPTED:
                accepted += 1
            elif outcome is _DUPLICATE:
                duplicates += 1
            else:
                report.rejected_by_reason[reason] += 1
                report.rejections.append(Rejection(delivery, reason))
        report.accepted, report.duplicates = accepted, duplicates
        return report

    def meter_one(self, record: DeliveredRecord) -> tuple[Outcome, str]:
        # read_event and readings rather than parse_event and measure: the same checks, without
        # the UsageEvent and Measurement objects an accepted event would only be copied out of.
        try:
            subject, source, event_id, event_type, time, data, content = read_event(record.value)
            readings = self.metering.readings(event_type, data)
        except EventError as error:
            self.reject(record, error)
            return Outcome.REJECTED, error.reason.value
        usage = AcceptedUsage(
            (subject, source, event_id),
            digest(content),
            time,
            tuple([(meter_key, group, value) for (meter_key, group), _, value in readings]),
            str(record.delivery),
        )
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
