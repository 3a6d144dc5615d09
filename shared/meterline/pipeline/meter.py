"""Meter: validate each delivered record, deduplicate it permanently, dead-letter what is bad.

Every record ends in exactly one outcome, and the outcome is a function of the record and of the
first-standing event with its key, so a redelivery reaches the same outcome:

- accepted: its usage item was created, or already carries this record's delivery (a redelivery);
- duplicate: an item with the same key and content stands from another delivery;
- rejected: invalid, or a conflict (same key, other content), or unprocessable — published to
  ``usage.rejected`` with the reason and the original bytes.

Duplicates and rejections are also written to the outcomes ledger under their delivery, so that
received = accepted + duplicates + rejected can be reconciled from the ledgers alone.

Reading a record is total (``records.usage_entry``): whatever is wrong with its bytes rejects it.
A store or publish call that fails raises; what that failure does to the record and to the rest
of its batch is the processor's to decide (``processing.MeterProcessor``): this job only offers
what that policy writes, an attempt counted under the record's delivery (``retrying``) and the
record dead-lettered as ``unprocessable`` with the attempts it took.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from time import monotonic
from typing import NamedTuple

from meterline.catalog import Catalog
from meterline.events import EventError, Reason
from meterline.markets import LOCAL, Market
from meterline.metering import Metering
from meterline.ports import Publisher, Store
from meterline.records import Delivery, usage_entry
from meterline.topology import USAGE_REJECTED

from .invoices import amend_window
from .outcomes import OutcomesLedger, printable
from .usage_ledger import UsageLedger

WINDOW_TTL = 60.0
"""Seconds the meter trusts the amendment window it read: the window only moves forward, once a
month, so a stale one only admits usage that the close then reports as out of the window."""


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class DeliveredRecord(NamedTuple):
    delivery: Delivery
    key: bytes | None
    value: bytes


class PublishError(Exception):
    pass


_ACCEPTED, _DUPLICATE = (Outcome.ACCEPTED, ""), (Outcome.DUPLICATE, "")

Settled = tuple[Outcome, str, int]
"""A record's outcome, its reason if rejected, and the attempts it took if it was dead-lettered (else 0)."""


class Meter:
    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        publisher: Publisher,
        window_ttl: float = WINDOW_TTL,
        market: Market = LOCAL,
        issues_here: bool = True,
    ) -> None:
        """``issues_here``: invoices are issued on these ledgers (the single-cell pipeline). A cell
        of a deployment with a billing home has no invoice ledger to read the amendment window
        from: it takes billing's first period, and the home's close reports what is out of the
        window (``out_of_window`` in its close record) without billing it."""
        self.metering = Metering(catalog.meters_by_type, market)
        self.store = store
        self.usage = UsageLedger(store)
        self.outcomes = OutcomesLedger(store)
        self.publisher = publisher
        self.first_period = catalog.first_period
        self.window_ttl = window_ttl
        self.issues_here = issues_here
        self._window: tuple[float, datetime] | None = None

    def window_start(self) -> datetime:
        """The first instant whose usage may still be billed or amended (cached ``window_ttl`` s)."""
        now = monotonic()
        if self._window is None or now - self._window[0] >= self.window_ttl:
            first = (amend_window(self.store) if self.issues_here else None) or self.first_period
            self._window = (now, max(first, self.first_period).start)
        return self._window[1]

    def meter_one(
        self, record: DeliveredRecord, window_start: datetime | None = None, delivery: str = ""
    ) -> tuple[Outcome, str]:
        """The record's outcome; a store or publish failure raises. ``window_start``: the window
        its batch read (``window_start()``), else read here; ``delivery``: the record's delivery
        as its batch spelled it (``str(record.delivery)``), else spelled here."""
        delivery = delivery or str(record.delivery)
        try:
            key, time, item = usage_entry(self.metering, record.value, delivery)
        except EventError as error:
            self.reject(record, error)
            return Outcome.REJECTED, error.reason.value
        if time < (window_start or self.window_start()):
            # too late to bill: unless it was accepted before (a redelivery), out of the window
            first = self.usage.standing(key)
            if first is None:
                when = f"{time.isoformat()} is before the periods still billed or amended"
                self.reject(record, EventError(Reason.OUT_OF_WINDOW, when))
                return Outcome.REJECTED, Reason.OUT_OF_WINDOW.value
        else:
            first = self.usage.add(item)
        if first is None or first.delivery == delivery:
            return _ACCEPTED
        if first.fingerprint == item["fp"]:
            self.outcomes.record(record.delivery, Outcome.DUPLICATE, "duplicate", "")
            return _DUPLICATE
        conflict = EventError(
            Reason.CONFLICT, f"an earlier event with this (subject, source, id) stands ({first.delivery})"
        )
        self.reject(record, conflict)
        return Outcome.REJECTED, Reason.CONFLICT.value

    def count_attempt(self, delivery: Delivery, failure: Exception) -> int:
        """Count a failed attempt at the record under its delivery; return the attempts so far."""
        return self.outcomes.count_attempt(delivery, f"{type(failure).__name__}: {failure}")

    def dead_letter(self, record: DeliveredRecord, failure: Exception, attempts: int) -> Settled:
        """Give up on a record that failed ``attempts`` times: rejected as unprocessable, unless an
        attempt that failed after its usage write had already accepted it."""
        delivery = str(record.delivery)
        try:
            key, _, _ = usage_entry(self.metering, record.value, delivery)
        except EventError:
            pass  # never accepted: rejecting it now is its one outcome
        else:  # its usage may have been written by an attempt that failed after the write
            stored = self.usage.standing(key)
            if stored is not None and stored.delivery == delivery:
                return Outcome.ACCEPTED, "", 0
        detail = f"failed {attempts} times; the last time: {type(failure).__name__}: {failure}"
        self.reject(record, EventError(Reason.UNPROCESSABLE, detail), attempts)
        return Outcome.REJECTED, Reason.UNPROCESSABLE.value, attempts

    def reject(self, record: DeliveredRecord, error: EventError, attempts: int = 0) -> None:
        detail = printable(error.detail)
        headers = {
            "reason": error.reason.value.encode(),
            "detail": detail.encode(),
            "delivery": str(record.delivery).encode("utf-8", "backslashreplace"),
        }
        if attempts:
            headers["attempts"] = str(attempts).encode()
        self.outcomes.record(record.delivery, Outcome.REJECTED, error.reason.value, detail, attempts)
        try:
            # Flushed per reject (rejects are rare): the record counts as handled only once the
            # dead letter is acknowledged, and a frozen Lambda keeps nothing buffered.
            self.publisher.publish(USAGE_REJECTED.name, record.key or b"", record.value, headers)
            self.publisher.flush()
        except Exception as failure:
            raise PublishError(str(failure)) from failure
