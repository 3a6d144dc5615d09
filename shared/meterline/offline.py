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
from decimal import Decimal
from typing import Any

import orjson
from orjson import JSONDecodeError

from meterline.aggregation import Value, new_state
from meterline.billing import Openings, PeriodBill, bill_period, customer_credits, first_grant_period
from meterline.catalog import Aggregation, Catalog
from meterline.credits import Credits
from meterline.events import EVENT_REASONS, EventError, Reason, common_time
from meterline.invoice import Invoice, UnbilledUsage
from meterline.markets import Market
from meterline.metering import Metering, Plain, Reading
from meterline.periods import Period
from meterline.records import MAX_ITEM_BYTES, UsageFields, read_usage
from meterline.terms import cutter
from meterline.usage import States, UsageBook

CELL = "local"
"""The cell of a usage file given without one."""

_loads, _dumps, _SORTED = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS
_WITH_DATA = 7
"""The attributes of an event with data and without extensions: specversion, id, source, type,
subject, time and data."""
_NEWLINE = ord("\n")
_SUM, _UNIQUE_COUNT, _TIMED = Aggregation.SUM, Aggregation.UNIQUE_COUNT, Aggregation.TIME_WEIGHTED


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


Seen = dict[tuple[str, str], dict[str, int]]
"""One cell's dedup record: each event id's fingerprint under its (subject, source), which costs
one copy of each tenant and source for a million keys, not a tuple and two more strings each.

First stands: a repeat with equal content is a duplicate, with other content a conflict. The
fingerprint is Python's keyed 64-bit hash of the canonical content, which costs 30 ns where a
digest costs 500. Different fingerprints mean different contents for certain; different contents
with the same hash (the one way a conflict could pass for a duplicate) have odds of 2**-64 per
repeat."""
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
        self._plain: dict[str, tuple[Plain, ...]] = {}
        self._plain_sizes: dict[str, int] = {}
        """The longest line of each type whose records surely fit a ledger item (``read_usage``)."""
        self._months: dict[tuple[str, int], _Month] = {}
        self._recent: dict[str, _Month] = {}
        """Each tenant's month seen last: consecutive events of a tenant are mostly of one month."""
        self._numbers = (self.first.year * 12 + self.first.month, last.year * 12 + last.month)
        """The months kept, first and last, as year * 12 + month."""
        self._latest: dict[str, States] = {}
        """Each tenant's states in the last period, when that month is one segment: where almost
        every event goes, found in one lookup and counted at the end (``kept``)."""

    def read(self, lines: Iterable[bytes | str], cell: str = CELL) -> None:
        """Meter the lines of one cell's file (``cell`` given twice: one file, read in two parts).

        One loop, with what each event needs inline: this is most of `meterline rate`'s time."""
        rejected = self.rejected_by_reason
        metering = self._metering_of(cell)
        self._plain = metering.plain
        self._plain_sizes = {
            event_type: MAX_ITEM_BYTES // metering.weights[event_type] - 1024 for event_type in metering.plain
        }
        read_plain = self._read_plain
        seen = self.cells.setdefault(cell, {})
        recent = self._recent
        month_of = self._month
        latest = self._latest
        last_year, last_month = self.last.year, self.last.month
        received = duplicates = 0
        for line in lines:
            if not line:
                continue
            fields = read_plain(line)
            try:
                if fields is None:
                    if line.isspace():
                        continue
                    fields = read_usage(metering, line)
                subject, source, event_id, time, readings, content = fields
                fingerprint = hash(content)
                ids = seen.get((subject, source))
                if ids is None:
                    ids = seen[(subject, source)] = {}
                first = ids.get(event_id)
                if first is None:
                    ids[event_id] = fingerprint
                elif first == fingerprint:
                    received += 1
                    duplicates += 1
                    continue
                else:
                    raise EventError(Reason.CONFLICT, _CONFLICT)
            except EventError as error:
                received += 1
                rejected[error.reason.value] += 1
                continue
            received += 1
            states = None
            if time.month == last_month and time.year == last_year:
                states = latest.get(subject)
            if states is None:
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
            for key, meter, value in readings:
                state = states.get(key)
                if state is None:
                    state = states[key] = new_state(meter.aggregation)
                state.add(value, time, event_id)
        self.received += received
        self.duplicates += duplicates

    def _metering_of(self, cell: str) -> Metering:
        """The catalog's meters in ``cell``'s market, which stamps the groups' ``$cloud``/``$region``."""
        metering = self._meterings.get(cell)
        if metering is None:
            metering = self._meterings[cell] = Metering(self.catalog.meters_by_type, Market.of_cell(cell))
        return metering

    def _read_plain(self, line: bytes | str) -> UsageFields | None:
        """``read_usage`` of the event nearly every producer writes, for a third of its time: the
        six attributes, data of text and integers only, spelled compactly, measured by meters of
        one data key each. None for anything else, which ``read_usage`` reads and, if need be,
        rejects with its reason: this reads only what it would accept, and reads it alike."""
        if type(line) is not bytes:
            return None
        try:
            document = _loads(line)
        except JSONDecodeError:
            return None
        if type(document) is not dict or len(document) != _WITH_DATA:
            return None
        get = document.get
        data, event_type = get("data"), get("type")
        if type(data) is not dict or type(event_type) is not str:
            return None
        plain = self._plain.get(event_type)
        if plain is None or len(line) > self._plain_sizes[event_type]:
            return None
        subject, source, event_id, time = get("subject"), get("source"), get("id"), get("time")
        if not (
            type(subject) is str and subject and type(source) is str and source
            and type(event_id) is str and event_id and event_type and type(time) is str
            and get("specversion") == "1.0"
        ):  # fmt: skip
            return None
        for found in data.values():
            kind = type(found)
            if kind is not str and kind is not int:  # a float, an object, true, null: read_usage
                return None
        # orjson writes compactly, sorted: the same size as the line only if no key was repeated
        # (see events._compact_size); and then it is the event's canonical content
        content = _dumps(document, option=_SORTED)
        size = len(content)
        if size != len(line) and (size != len(line) - 1 or line[-1] != _NEWLINE):
            return None
        moment = common_time(time)
        if moment is None:
            return None
        readings: list[Reading] = []
        for key, meter, aggregation, name, group_by in plain:
            if name is None:
                value: Value = None
            else:
                value = data.get(name)
                if type(value) is int:
                    if aggregation is _SUM:
                        if value < 0:
                            return None
                    elif aggregation is _UNIQUE_COUNT:
                        value = str(value)
                    elif aggregation is _TIMED and value < 0:
                        return None
                    else:
                        value = Decimal(value)  # a state that keeps its values keeps Decimals
                elif aggregation is not _UNIQUE_COUNT or value is None:
                    return None  # missing, or a decimal string: read_usage reads it exactly
            readings.append((key or (meter.key, tuple(map(data.get, group_by))), meter, value))
        return subject, source, event_id, moment, readings, content

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
        """Reading is done: let go of the dedup keys, most of what a large file's metering holds."""
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
