"""`meterline rate`: event files rated offline, in the order SPEC §4 sets, for one period or a range.

Each file is a cell's (SPEC §8): validated, then deduplicated over the whole file within its cell,
then sorted into periods; its measurements carry the cell's market (``<cloud>-<region>``). Every
period from ``billing.first_period`` up to the last one asked for is kept, because a period's
invoices depend on the ones before it: time-weighted values carry over, and credit grants carry
balances. Those periods are billed in order; the ones asked for are printed. Usage before
``first_period`` (or after the last period) counts as out of period only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from msgspec import DecodeError

from meterline.billing import Openings, PeriodBill, bill_period, customer_credits, first_grant_period
from meterline.catalog import Catalog
from meterline.credits import Credits
from meterline.events import EVENT_REASONS, EventError, EventKey, Reason
from meterline.heap import collector_paused
from meterline.invoice import Invoice, UnbilledUsage
from meterline.markets import Market
from meterline.metering import Metering
from meterline.periods import Period
from meterline.plain import PlainDecoder, Slots
from meterline.records import MAX_ITEM_BYTES, read_usage
from meterline.terms import cutter
from meterline.usage import States, UsageBook, fold

CELL = "local"
"""The cell of a usage file given without one."""


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
            "rejected_by_reason": {
                reason.value: self.rejected_by_reason[reason.value]
                for reason in Reason
                if reason in EVENT_REASONS or self.rejected_by_reason[reason.value]
            },
            "out_of_period": self.out_of_period,
        }


@dataclass
class RateResult:
    period: Period
    invoices: list[Invoice]
    summary: Summary
    unbilled_tenants: list[str]
    unbilled_usage: list[UnbilledUsage] = field(default_factory=list)
    credit_balances: list[dict[str, Any]] = field(default_factory=list)
    """Each credit grant that may pay this period's invoices, as it stands at the period's end."""

    def to_json(self) -> dict[str, Any]:
        return {
            "period": str(self.period),
            "invoices": [invoice.to_json() for invoice in self.invoices],
            "summary": self.summary.to_json(),
            "unbilled_tenants": self.unbilled_tenants,
            "unbilled_usage": [usage.to_json() for usage in self.unbilled_usage],
            "credit_balances": self.credit_balances,
        }


_CONFLICT = "an earlier event has the same (subject, source, id) and other content"


@dataclass(slots=True)
class _Month:
    """Where a tenant's events of one month go, and how many came: its states, or, when the month
    is cut into segments, its states by day; neither when the month is not kept."""

    year: int
    month: int
    states: States | None
    by_day: list[States] | None
    events: int = 0


def _undecodable(line: bytes | str) -> Any:
    raise DecodeError("no event type is read without read_usage")


def _content(metering: Metering, line: bytes | str) -> bytes:
    """A valid line's canonical content, to compare a repeated key's two events."""
    return read_usage(metering, line)[5]


def _key(metering: Metering, line: bytes | str) -> EventKey:
    subject, source, event_id, *_ = read_usage(metering, line)
    return subject, source, event_id


Line = bytes | str


class Seen(dict[str, Line]):
    """One cell's dedup record (SPEC §1): the line of each event id's first valid event, and in
    ``others`` the lines of events that share an id under other (subject, source) keys.

    First stands: a repeat with equal content is a duplicate, with other content a conflict. A
    repeat spelled byte for byte as the first is a duplicate at once; one spelled otherwise has
    both lines' canonical content compared (``read_usage``), exactly. So no event pays for a
    canonical encoding or a key tuple unless its id repeats; the price is each unique event's line,
    kept until ``finish``."""

    def __init__(self, metering: Metering) -> None:
        super().__init__()
        self.metering = metering
        self.others: dict[EventKey, Line] = {}

    def repeated(self, first: Line, line: Line, subject: str, source: str, event_id: str) -> bool:
        """Whether ``line``, a valid event whose id came before (in ``first``), is a duplicate;
        raise if it conflicts; else (another key with the same id) keep it as that key's first."""
        if first == line:
            return True
        key = (subject, source, event_id)
        if _key(self.metering, first) != key:
            other = self.others.get(key)
            if other is None:
                self.others[key] = line
                return False
            if other == line:
                return True
            first = other
        if _content(self.metering, first) != _content(self.metering, line):
            raise EventError(Reason.CONFLICT, _CONFLICT)
        return True


class Metered:
    """Usage files read into one book: each validated and deduplicated within its cell, the counts
    kept across all of them. The book holds the periods from ``billing.first_period`` to ``last``."""

    def __init__(self, catalog: Catalog, last: Period) -> None:
        self.catalog = catalog
        self.first = catalog.first_period
        self.last = last
        self.book = UsageBook(cutter(catalog))
        self.received = 0
        self.duplicates = 0
        self.rejected_by_reason: Counter[str] = Counter()
        self.cells: dict[str, Seen] = {}
        self._meterings: dict[str, Metering] = {}
        self._decoders: dict[str, PlainDecoder] = {}
        self._months: dict[tuple[str, int], _Month] = {}
        self._recent: dict[str, _Month] = {}
        """Each tenant's month seen last: consecutive events of a tenant are mostly of one month."""
        self._numbers = (self.first.year * 12 + self.first.month, last.year * 12 + last.month)
        """The months kept, first and last, as year * 12 + month."""
        self._latest: dict[str, States] = {}
        """Each tenant's states in the last period, when that month is one segment."""

    def read(self, lines: Iterable[bytes | str], cell: str = CELL) -> None:
        """Meter the lines of one cell's file (``cell`` given twice: one file, read in two parts).

        One loop, with what each event needs inline: this is most of `meterline rate`'s time. The
        event nearly every producer writes (bytes that ``PlainDecoder`` decodes into its type's
        Struct) is checked, deduplicated and folded into its tenant's ``Slots`` of the last period
        by one call, its type's ``take``; one of another month, a repeated id or a tenant's first
        is checked there and folded here by its ``fold``; any other goes to ``read_usage``, which
        reads it alike or rejects it with its reason. The
        garbage collector is off meanwhile (``collector_paused``): the loop makes no cycles, and
        each collection would walk the book's states and the dedup record again."""
        rejected = self.rejected_by_reason
        metering = self._metering_of(cell)
        decoder = self._decoders[cell]
        decode = decoder.decode or _undecodable
        slots_by_states: dict[int, Slots] = {}
        """Each set of states' slots, by the states' id (the book holds them all while reading)."""
        latest: dict[str, Slots] = {}
        """Each tenant's slots in the last period, when that month is one segment: where almost
        every event goes, found in one lookup and counted at the end (``kept``)."""
        latest_states = self._latest
        seen = self.cells.get(cell)
        if seen is None:
            seen = self.cells[cell] = Seen(metering)
        recent = self._recent
        month_of = self._month
        last_year, last_month = self.last.year, self.last.month
        received = duplicates = 0
        with collector_paused():
            for line in lines:
                if type(line) is bytes:  # text is read by read_usage
                    try:
                        event = decode(line)
                    except (DecodeError, RecursionError):  # read_usage says why
                        event = None
                    else:
                        taken = event.take(line, seen, latest)
                        if taken is True:  # the usual event: checked, new, folded
                            received += 1
                            continue
                        if taken is None:
                            event = None
                        else:
                            time, subject, event_id = taken, event.subject, event.id
                else:
                    event = None
                try:
                    if event is None:
                        if not line or line.isspace():
                            continue
                        subject, source, event_id, time, readings, _ = read_usage(metering, line)
                    first = seen.get(event_id)
                    if first is None:
                        seen[event_id] = line
                    elif seen.repeated(first, line, subject, event.source if event else source, event_id):
                        received += 1
                        duplicates += 1
                        continue
                except EventError as error:
                    received += 1
                    rejected[error.reason.value] += 1
                    continue
                received += 1
                slots = None
                if time.month == last_month and time.year == last_year:
                    slots = latest.get(subject)
                if slots is None:
                    # another month, the tenant's first event of the last one, or a month cut in segments
                    month = recent.get(subject)
                    if month is None or month.month != time.month or month.year != time.year:
                        month = recent[subject] = month_of(subject, time.year, time.month)
                    month.events += 1
                    states = month.states
                    if states is None:
                        by_day = month.by_day
                        if by_day is None:
                            continue  # outside the periods kept
                        states = by_day[time.day]
                    slots = slots_by_states.get(id(states))
                    if slots is None:
                        slots = slots_by_states[id(states)] = decoder.slots(states)
                        if states is latest_states.get(subject):
                            latest[subject] = slots
                if event is not None:
                    event.fold(slots, time)
                else:
                    fold(slots[-1], readings, time, event_id)
        self.received += received
        self.duplicates += duplicates

    def _metering_of(self, cell: str) -> Metering:
        """The catalog's meters in ``cell``'s market, which stamps the groups' ``$cloud``/``$region``."""
        metering = self._meterings.get(cell)
        if metering is None:
            metering = self._meterings[cell] = Metering(self.catalog.meters_by_type, Market.of_cell(cell))
            self._decoders[cell] = PlainDecoder(metering, MAX_ITEM_BYTES, (self.last.year, self.last.month))
        return metering

    def _month(self, tenant: str, year: int, month: int) -> _Month:
        number = year * 12 + month
        found = self._months.get((tenant, number))
        if found is None:
            kept = self._numbers[0] <= number <= self._numbers[1]
            states = self.book.day_states(tenant, Period(year, month)) if kept else None
            if isinstance(states, list):
                found = _Month(year, month, None, states)
            else:
                found = _Month(year, month, states, None)
                if states is not None and number == self._numbers[1]:
                    self._latest[tenant] = states
            self._months[(tenant, number)] = found
        return found

    def finish(self) -> None:
        """Reading is done: let go of the dedup record (each unique event's line), most of what a
        large file's metering holds."""
        self.cells.clear()

    @property
    def valid(self) -> int:
        return self.received - self.duplicates - sum(self.rejected_by_reason.values())

    def kept(self, period: Period) -> int:
        """Valid, unique events of ``period`` kept in the book: those counted by month, and for
        the last period those that went straight to a tenant's states, which are all the others."""
        if not self.first <= period <= self.last:
            return 0
        key = period.year * 12 + period.month
        kept = sum(month.events for (_, number), month in self._months.items() if number == key)
        if period == self.last:
            kept += self.valid - sum(month.events for month in self._months.values())
        return kept

    def summary(self, period: Period) -> Summary:
        """SPEC §4's counts for ``period``: every valid, unique event outside it is out of period."""
        valid = self.valid
        accepted = self.kept(period)
        rejected = Counter(self.rejected_by_reason)
        return Summary(self.received, accepted, self.duplicates, valid - accepted, rejected)


def rate_lines(catalog: Catalog, lines: Iterable[bytes | str], period: Period) -> RateResult:
    """`meterline rate --usage FILE --period P`."""
    return rate_cells(catalog, {CELL: lines}, period, period)[0]


def rate_cells(
    catalog: Catalog, cells: Mapping[str, Iterable[bytes | str]], first: Period, last: Period
) -> list[RateResult]:
    """`meterline rate --usage CELL=FILE ... --from first --to last`: one result per period."""
    metered = Metered(catalog, last)
    for cell, lines in cells.items():
        metered.read(lines, cell)
    metered.finish()
    return rate_book(catalog, metered, first, last)


def meter_lines(catalog: Catalog, lines: Iterable[bytes | str], period: Period) -> Metered:
    metered = Metered(catalog, period)
    metered.read(lines)
    metered.finish()
    return metered


def rate_book(catalog: Catalog, metered: Metered, first: Period, last: Period) -> list[RateResult]:
    """Bill every period from the first one that bears on ``first`` up to ``last``; return the
    results from ``first`` on."""
    credits = customer_credits(catalog)
    grant_tenants = {
        tenant: start
        for tenant, customer in catalog.customers.items()
        if (start := first_grant_period(customer)) is not None
    }
    # usage and grants before ``first`` bear on it (carried values, balances); nothing before
    # billing's first period does
    earliest = min([first, *metered.book.periods(), *grant_tenants.values()])
    period = min(first, max(earliest, catalog.first_period))
    openings: Openings = {}
    results = []
    # bills are trees of values; a collection would walk the whole metered book again, for nothing
    with collector_paused():
        while period <= last:
            if period < first:
                rated = {tenant for tenant, start in grant_tenants.items() if start <= period}
                bill = bill_period(catalog, metered.book, period, openings, credits, rated=rated)
            else:
                bill = bill_period(catalog, metered.book, period, openings, credits)
                results.append(_result(bill, metered.summary(period), credits))
            openings = bill.closing
            period = period.next()
    return results


def _result(bill: PeriodBill, summary: Summary, credits: Mapping[str, Credits]) -> RateResult:
    balances = [
        {"tenant": tenant, **balance.to_json()}
        for tenant, tenant_credits in sorted(credits.items())
        for balance in sorted(tenant_credits.balances, key=lambda b: b.order())
        if balance.eligible(bill.period)
    ]
    return RateResult(bill.period, bill.invoices, summary, bill.unbilled_tenants, bill.unbilled, balances)
