"""Meter: validate each delivered record, deduplicate it permanently, dead-letter what is bad.

Every record ends in exactly one outcome, and the outcome is a function of the record and of the
first-standing event with its key, so a redelivery reaches the same outcome:

- accepted: its usage item was created, or already carries this record's delivery (a redelivery);
- duplicate: an item with the same key and content stands from another delivery;
- rejected: invalid, or a conflict (same key, other content), or unprocessable — published to
  ``usage.rejected`` with the reason and the original bytes.

Duplicates and rejections are also written to the outcomes ledger under their delivery, so that
received = accepted + duplicates + rejected can be reconciled from the ledgers alone.

No record can stop its partition for good. Reading a record is total (``records.read_usage``):
whatever is wrong with its bytes rejects it. A failure while writing its outcome is handed back
to be delivered again; an outage (``RetriableStoreError``: throttling, timeouts, lost races) as
often as it takes, since nothing is wrong with the record. Any other failure is counted in the
outcomes ledger under the record's delivery (``retrying``, with its attempts), and after
``MAX_ATTEMPTS`` the record is dead-lettered as ``unprocessable`` with the attempts it took.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from meterline.catalog import Catalog
from meterline.events import EventError, Reason
from meterline.markets import LOCAL, Market
from meterline.metering import Metering
from meterline.ports import Item, Publisher, RetriableStoreError, Store
from meterline.records import Delivery, usage_record
from meterline.topology import OUTCOMES_TABLE, USAGE_REJECTED, USAGE_TABLE

MAX_ATTEMPTS = 5
"""Deliveries of a record that fail other than by an outage before it is dead-lettered."""
RETRYING = "retrying"
"""The outcomes ledger's entry for a record that failed and will be delivered again: not an outcome."""
DETAIL_CHARACTERS = 500
"""How much of a rejection's detail the outcome and the dead letter carry."""


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
    error: BaseException


class DeadLetter(NamedTuple):
    """A record rejected as unprocessable after failing ``attempts`` times."""

    delivery: Delivery
    attempts: int


@dataclass
class MeterReport:
    accepted: int = 0
    duplicates: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    failed: list[DeliveredRecord] = field(default_factory=list)
    """Records to deliver again: a store or publish call failed for them, or for an earlier record
    of their partition."""
    rejections: list[Rejection] = field(default_factory=list)
    stalls: list[Stall] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())


class PublishError(Exception):
    pass


Settled = tuple[Outcome, str, int]
"""A record's outcome, its reason if rejected, and the attempts it took if it was dead-lettered (else 0)."""

_ACCEPTED, _DUPLICATE = Outcome.ACCEPTED, Outcome.DUPLICATE


class Meter:
    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        publisher: Publisher,
        max_attempts: int = MAX_ATTEMPTS,
        market: Market = LOCAL,
    ) -> None:
        self.metering = Metering(catalog.meters_by_type, market)
        self.store = store
        self.publisher = publisher
        self.max_attempts = max_attempts

    def run(self, records: Iterable[DeliveredRecord]) -> MeterReport:
        """Meter a batch in partition order. After a record is handed back, the rest of its
        partition is handed back unprocessed, as Lambda redelivers it: were a later record admitted
        first, a conflicting pair could stand the other way round than the partition's order says.
        Never raises: each record ends in an outcome or is handed back."""
        report = MeterReport()
        accepted = duplicates = 0
        stalled: set[tuple[str, int]] = set()
        for record in records:
            delivery = record.delivery
            if stalled and (delivery.topic, delivery.partition) in stalled:
                report.failed.append(record)
                continue
            try:
                outcome, reason, attempts = self.settle(record)
            except Exception as error:  # to be delivered again
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
                if attempts:
                    report.dead_letters.append(DeadLetter(delivery, attempts))
        report.accepted, report.duplicates = accepted, duplicates
        return report

    def settle(self, record: DeliveredRecord) -> Settled:
        """Meter one record to its outcome; raise (a store or publish failure) if it is to be
        delivered again."""
        try:
            outcome, reason = self.meter_one(record)
        except RetriableStoreError:
            raise  # an outage: nothing is wrong with the record
        except Exception as failure:
            return self.after_failure(record, failure)
        return outcome, reason, 0

    def meter_one(self, record: DeliveredRecord) -> tuple[Outcome, str]:
        """The record's outcome; a store or publish failure raises."""
        try:
            usage, item = usage_record(self.metering, record.value, str(record.delivery))
        except EventError as error:
            self.reject(record, error)
            return Outcome.REJECTED, error.reason.value
        first = self.store.put_new(USAGE_TABLE.name, item)
        if first is None or first.get("at") == usage.delivery:
            return Outcome.ACCEPTED, ""
        if first.get("fp") == usage.fingerprint:
            self.store.put(
                OUTCOMES_TABLE.name, outcome_item(record.delivery, Outcome.DUPLICATE, "duplicate", "")
            )
            return Outcome.DUPLICATE, ""
        conflict = EventError(
            Reason.CONFLICT, f"an earlier event with this (subject, source, id) stands ({first.get('at')!s})"
        )
        self.reject(record, conflict)
        return Outcome.REJECTED, Reason.CONFLICT.value

    def after_failure(self, record: DeliveredRecord, failure: Exception) -> Settled:
        """Count the failed attempt and raise the failure, or dead-letter the record once it has
        had its attempts. A failure to count or to dead-letter raises too: delivered again."""
        attempts = self.count_attempt(record.delivery, failure)
        if attempts < self.max_attempts:
            raise failure
        return self.dead_letter(record, failure, attempts)

    def count_attempt(self, delivery: Delivery, failure: Exception) -> int:
        pk, sk = delivery.outcome_key()
        stored = self.store.get(OUTCOMES_TABLE.name, pk, sk)
        attempts = int(stored.get("attempts", 0)) + 1 if stored is not None else 1
        item = outcome_item(delivery, RETRYING, "", f"{type(failure).__name__}: {failure}")
        self.store.put(OUTCOMES_TABLE.name, {**item, "attempts": attempts})
        return attempts

    def dead_letter(self, record: DeliveredRecord, failure: Exception, attempts: int) -> Settled:
        try:
            usage, item = usage_record(self.metering, record.value, str(record.delivery))
        except EventError:
            pass  # never accepted: rejecting it now is its one outcome
        else:  # its usage may have been written by an attempt that failed after the write
            stored = self.store.get(USAGE_TABLE.name, str(item["pk"]), str(item["sk"]))
            if stored is not None and stored.get("at") == usage.delivery:
                return Outcome.ACCEPTED, "", 0
        detail = f"failed {attempts} times; the last time: {type(failure).__name__}: {failure}"
        self.reject(record, EventError(Reason.UNPROCESSABLE, detail), attempts)
        return Outcome.REJECTED, Reason.UNPROCESSABLE.value, attempts

    def reject(self, record: DeliveredRecord, error: EventError, attempts: int = 0) -> None:
        detail = printable(error.detail)
        outcome = outcome_item(record.delivery, Outcome.REJECTED, error.reason.value, detail)
        headers = {
            "reason": error.reason.value.encode(),
            "detail": detail.encode(),
            "delivery": str(record.delivery).encode("utf-8", "backslashreplace"),
        }
        if attempts:
            outcome["attempts"] = attempts
            headers["attempts"] = str(attempts).encode()
        self.store.put(OUTCOMES_TABLE.name, outcome)
        try:
            # Flushed per reject (rejects are rare): the record counts as handled only once the
            # dead letter is acknowledged, and a frozen Lambda keeps nothing buffered.
            self.publisher.publish(USAGE_REJECTED.name, record.key or b"", record.value, headers)
            self.publisher.flush()
        except Exception as failure:
            raise PublishError(str(failure)) from failure


def outcome_item(delivery: Delivery, outcome: str, reason: str, detail: str) -> Item:
    pk, sk = delivery.outcome_key()
    return {"pk": pk, "sk": sk, "outcome": outcome, "reason": reason, "detail": printable(detail)}


def printable(detail: str) -> str:
    """The detail cut to DETAIL_CHARACTERS, any lone surrogate escaped: stores and brokers take
    only Unicode text, and a detail may quote the bad input itself."""
    return detail[:DETAIL_CHARACTERS].encode("utf-8", "backslashreplace").decode("utf-8")
