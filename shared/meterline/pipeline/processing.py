"""What a failure does, decided apart from the jobs it happens in: the failure policy every cloud's
trigger processor shares (``adapters/*``: decode the trigger, process each record here, respond).

- meter (``MeterProcessor``): no record can stop its partition for good. An outage
  (``RetriableStoreError``: throttling, timeouts, lost races) is delivered again for as long as it
  lasts, since nothing is wrong with the record. Any other failure counts an attempt in the
  outcomes ledger under the record's delivery, and at ``MAX_ATTEMPTS`` the record is dead-lettered
  as ``unprocessable``. In a batch, a failed record is handed back with the rest of its partition,
  so the first of two conflicting events is always the partition's first.
- aggregate (``AggregateProcessor``): a batch that fails on the store is retried whole (the
  aggregator's markers make that safe); one that fails on anything else is a record's fault, so
  each record is tried alone and those that fail alone are set aside, and the rest is applied.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from meterline.ports import RetriableStoreError, StoreError
from meterline.records import Delivery, partition_prefix

from .meter import DeliveredRecord, Meter, Outcome, Settled

if TYPE_CHECKING:  # the meter function does not load the aggregator
    from .aggregate import Aggregator, StreamRecord

MAX_ATTEMPTS = 5
"""Deliveries of a record that fail other than by an outage before it is dead-lettered."""


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


class MeterProcessor:
    def __init__(self, meter: Meter, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.meter = meter
        self.max_attempts = max_attempts

    def settle(self, record: DeliveredRecord) -> Settled:
        """Meter one record to its outcome; raise (a store or publish failure) if it is to be
        delivered again."""
        try:
            outcome, reason = self.meter.meter_one(record)
        except Exception as failure:
            return self.settle_failed(record, failure)
        return outcome, reason, 0

    def settle_failed(self, record: DeliveredRecord, failure: Exception) -> Settled:
        """What a record whose metering failed comes to; raise (the failure, or one counting its
        attempt or dead-lettering it) if it is to be delivered again."""
        if isinstance(failure, RetriableStoreError):
            raise failure  # an outage: nothing is wrong with the record
        attempts = self.meter.count_attempt(record.delivery, failure)
        if attempts < self.max_attempts:
            raise failure
        return self.meter.dead_letter(record, failure, attempts)

    def run(self, records: Iterable[DeliveredRecord]) -> MeterReport:
        """Meter a batch in partition order. After a record is handed back, the rest of its
        partition is handed back unprocessed, as Lambda redelivers it: were a later record admitted
        first, a conflicting pair could stand the other way round than the partition's order says.
        Never raises: each record ends in an outcome or is handed back."""
        report = MeterReport()
        accepted = duplicates = 0
        stalled: set[tuple[str, int]] = set()
        meter_one, window_start = self.meter.meter_one, None
        # Per batch, not per record: an Enum member's lookup and a delivery's str (its partition's
        # part spelled once) each cost about as much as a dict lookup does several times over.
        is_accepted, is_duplicate = Outcome.ACCEPTED, Outcome.DUPLICATE
        partitions: dict[tuple[str, int], str] = {}
        for record in records:
            delivery = record.delivery
            partition = delivery.topic, delivery.partition
            if stalled and partition in stalled:
                report.failed.append(record)
                continue
            prefix = partitions.get(partition)
            if prefix is None:
                prefix = partitions[partition] = partition_prefix(*partition)
            try:  # settle, spelled out: one call less per record
                if window_start is None:  # read once a batch: it moves once a month
                    window_start = self.meter.window_start()
                outcome, reason = meter_one(record, window_start, prefix + str(delivery.offset))
            except Exception as failure:
                try:
                    outcome, reason, attempts = self.settle_failed(record, failure)
                except Exception as error:  # to be delivered again
                    report.failed.append(record)
                    report.stalls.append(Stall(delivery, error))
                    stalled.add(partition)
                    continue
            else:
                attempts = 0
            if outcome is is_accepted:
                accepted += 1
            elif outcome is is_duplicate:
                duplicates += 1
            else:
                report.rejected_by_reason[reason] += 1
                report.rejections.append(Rejection(delivery, reason))
                if attempts:
                    report.dead_letters.append(DeadLetter(delivery, attempts))
        report.accepted, report.duplicates = accepted, duplicates
        return report


class AggregateProcessor:
    def __init__(self, aggregator: Aggregator) -> None:
        self.aggregator = aggregator

    def run(self, records: Sequence[StreamRecord]) -> int:
        """Apply a batch; return how many records were applied. A store failure raises (the
        batch is retried whole); any other failure sets aside the records that fail alone."""
        aggregator = self.aggregator
        before = aggregator.applied
        remaining = list(records)
        while True:
            try:
                aggregator.run(remaining)
            except StoreError:
                raise
            except Exception:
                poison = aggregator.poison(remaining)
                if not poison:
                    raise  # not a record's fault
                remaining = [record for record in remaining if id(record) not in poison]
                continue
            return aggregator.applied - before


def log_settled(logger: logging.Logger, delivery: Delivery, settled: Settled) -> None:
    """A line for a record rejected or dead-lettered, where no batch report measures it (GCP and
    Azure: a log line with ``metric: dead_lettered`` is what their alerts count)."""
    outcome, reason, attempts = settled
    if attempts:
        logger.error(
            "record dead-lettered after failing every attempt",
            extra={"delivery": str(delivery), "attempts": attempts, "metric": "dead_lettered"},
        )
    elif outcome is Outcome.REJECTED:
        logger.info("event rejected", extra={"delivery": str(delivery), "reason": reason})


def log_set_aside(logger: logging.Logger, count: int) -> None:
    if count:
        logger.error(
            "records set aside: they cannot be aggregated", extra={"count": count, "metric": "dead_lettered"}
        )
