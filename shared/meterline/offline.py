"""`meterline rate`: an event file rated offline, in the order SPEC §4 sets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from meterline.aggregation import AggregateState
from meterline.catalog import Catalog
from meterline.events import EventError, EventKey, Reason, read_event
from meterline.invoice import Invoice
from meterline.metering import Metering
from meterline.periods import Period
from meterline.rating import rate_tenant
from meterline.usage import StateKey, UsageBook, fold


@dataclass
class Summary:
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    out_of_period: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "rejected_by_reason": {reason.value: self.rejected_by_reason[reason.value] for reason in Reason},
            "out_of_period": self.out_of_period,
        }


@dataclass
class RateResult:
    period: Period
    invoices: list[Invoice]
    summary: Summary
    unbilled_tenants: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "period": str(self.period),
            "invoices": [invoice.to_json() for invoice in self.invoices],
            "summary": self.summary.to_json(),
            "unbilled_tenants": self.unbilled_tenants,
        }


class Deduplicator:
    """First stands: a repeat with equal content is a duplicate, with other content a conflict.

    A fingerprint is anything equal when the content is: an event's digest, or (in ``meter_lines``)
    Python's keyed 64-bit hash of its canonical content, which costs 30 ns where the digest costs
    500. Different fingerprints mean different contents for certain; different contents with the
    same hash (the one way a conflict could pass for a duplicate) have odds of 2**-64 per repeat.
    """

    def __init__(self) -> None:
        # id -> fingerprint under each (subject, source): a million keys cost one copy of each
        # tenant and source, not a tuple and two more strings each.
        self.seen: dict[tuple[str, str], dict[str, object]] = {}

    def admit(self, key: EventKey, fingerprint: object) -> bool:
        """True for a first sighting; False for a duplicate; raises EventError on a conflict."""
        subject, source, event_id = key
        origin = (subject, source)
        ids = self.seen.get(origin)
        if ids is None:
            ids = self.seen[origin] = {}
        first = ids.get(event_id)
        if first is None:
            ids[event_id] = fingerprint
            return True
        if first == fingerprint:
            return False
        raise EventError(
            Reason.CONFLICT, "an earlier event has the same (subject, source, id) and other content"
        )


def rate_lines(catalog: Catalog, lines: Iterable[bytes | str], period: Period) -> RateResult:
    book, summary = meter_lines(catalog, lines, period)
    return rate_book(catalog, book, period, summary)


def meter_lines(catalog: Catalog, lines: Iterable[bytes | str], period: Period) -> tuple[UsageBook, Summary]:
    """Validate, dedup over all the lines, then keep the period's accepted usage (SPEC §4's order)."""
    summary = Summary()
    rejected = summary.rejected_by_reason
    readings_of = Metering(catalog.meters_by_type).readings
    admit = Deduplicator().admit
    book = UsageBook()
    tenant_states: dict[str, dict[StateKey, AggregateState]] = {}
    year, month = period.year, period.month
    received = duplicates = out_of_period = 0
    for line in lines:
        if not line or line.isspace():
            continue
        received += 1
        try:
            subject, source, event_id, event_type, time, data, content = read_event(line)
            readings = readings_of(event_type, data)
            if not admit((subject, source, event_id), hash(content)):
                duplicates += 1
                continue
        except EventError as error:
            rejected[error.reason.value] += 1
            continue
        if time.month != month or time.year != year:
            out_of_period += 1
            continue
        states = tenant_states.get(subject)
        if states is None:
            states = tenant_states[subject] = book.states_of(subject, period)
        fold(states, readings, time, event_id)
    summary.received, summary.duplicates, summary.out_of_period = received, duplicates, out_of_period
    summary.accepted = received - duplicates - out_of_period - summary.rejected
    return book, summary


def rate_book(catalog: Catalog, book: UsageBook, period: Period, summary: Summary) -> RateResult:
    invoices: list[Invoice] = []
    with_usage = set(book.tenants(period))
    unbilled = sorted(with_usage - catalog.customers.keys())
    for tenant in sorted(catalog.customers):
        customer = catalog.customers[tenant]
        plan = catalog.plan_in_effect(customer.subscriptions[-1].plan, period)
        if plan is None:
            if tenant in with_usage:
                unbilled.append(tenant)
            continue
        invoices.append(
            rate_tenant(catalog, customer, plan, period, book.quantities(catalog, tenant, period))
        )
    return RateResult(period, invoices, summary, sorted(unbilled))
