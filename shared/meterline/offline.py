"""`meterline rate`: an event file rated offline, in the order SPEC §4 sets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from meterline.catalog import Catalog
from meterline.events import EventError, EventKey, Reason, parse_event
from meterline.invoice import Invoice
from meterline.metering import Metering
from meterline.periods import Period
from meterline.rating import rate_tenant
from meterline.usage import UsageBook


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
    """First stands: a repeat with equal content is a duplicate, with other content a conflict."""

    def __init__(self) -> None:
        self.seen: dict[EventKey, bytes] = {}

    def admit(self, key: EventKey, fingerprint: bytes) -> bool:
        """True for a first sighting; False for a duplicate; raises EventError on a conflict."""
        first = self.seen.get(key)
        if first is None:
            self.seen[key] = fingerprint
            return True
        if first == fingerprint:
            return False
        raise EventError(
            Reason.CONFLICT, "an earlier event has the same (subject, source, id) and other content"
        )


def rate_lines(catalog: Catalog, lines: Iterable[bytes | str], period: Period) -> RateResult:
    summary = Summary()
    metering = Metering(catalog.meters_by_type)
    dedup = Deduplicator()
    book = UsageBook()
    for line in lines:
        if not line.strip():
            continue
        summary.received += 1
        try:
            event = parse_event(line)
            measurements = metering.measure(event)
            if not dedup.admit(event.key, event.fingerprint):
                summary.duplicates += 1
                continue
        except EventError as error:
            summary.rejected_by_reason[error.reason.value] += 1
            continue
        if event.period != period:
            summary.out_of_period += 1
            continue
        summary.accepted += 1
        book.record(event.subject, period, measurements, event.time, event.id)
    return rate_book(catalog, book, period, summary)


def rate_book(catalog: Catalog, book: UsageBook, period: Period, summary: Summary) -> RateResult:
    invoices: list[Invoice] = []
    with_usage = set(book.tenants(period))
    unbilled = sorted(with_usage - catalog.customers.keys())
    for tenant in sorted(catalog.customers):
        customer = catalog.customers[tenant]
        plan = catalog.plan_in_effect(customer.plan, period)
        if plan is None:
            if tenant in with_usage:
                unbilled.append(tenant)
            continue
        invoices.append(
            rate_tenant(catalog, customer, plan, period, book.quantities(catalog, tenant, period))
        )
    return RateResult(period, invoices, summary, sorted(unbilled))
