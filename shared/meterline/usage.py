"""Accumulated usage: aggregate states per tenant and period, per segment of days, per meter and group.

A tenant's month is kept in segments cut at its subscriptions' boundaries (``terms.segments``), so
the usage of each invoice (one per subscription active in the period) is whole segments: a max or a
distinct count over part of a month cannot be taken from the month's state. Almost every tenant
has one segment, the whole month. Time-weighted samples carry their times, so their hours are
split at any instant; their value in force at a period's start comes from the periods before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from meterline.aggregation import (
    AggregateState,
    TimeWeightedState,
    meter_quantity,
    new_state,
    state_from_json,
)
from meterline.catalog import Aggregation, Catalog, Meter
from meterline.metering import Group, GroupValue, Measurement, Reading
from meterline.periods import Period
from meterline.terms import Days, day_start, whole_month

TenantPeriod = tuple[str, Period]
StateKey = tuple[str, Group]
"""(meter key, group)"""
States = dict[StateKey, AggregateState]
Segments = dict[Days, States]
"""A tenant's states in one period, by segment of days."""
Cutter = Callable[[str, Period], Sequence[Days]]
"""The segments a tenant's month is cut into (``terms.segments`` bound to a catalog)."""
Usage = Mapping[StateKey, Fraction]
"""Quantities by (meter key, group), after divide_by."""
Opening = Mapping[StateKey, Decimal]
"""Time-weighted values in force at a period's start, by (meter key, group)."""


class UsageSplitError(ValueError):
    """Usage kept in a segment that a subscription boundary cuts: it cannot be split exactly."""


class UsageBook:
    """Mergeable: books filled from any split of the same measurements merge to the same book."""

    def __init__(self, cutter: Cutter | None = None) -> None:
        self.states: dict[TenantPeriod, Segments] = {}
        self.cutter = cutter
        """None: one segment, the whole month."""
        self._days: dict[TenantPeriod, States | list[States]] = {}

    def record(
        self, tenant: str, period: Period, measurements: Iterable[Measurement], time: datetime, event_id: str
    ) -> None:
        readings = [((m.meter.key, m.group), m.meter, m.value) for m in measurements]
        fold(self.states_on(tenant, period, time.day), readings, time, event_id)

    def states_on(self, tenant: str, period: Period, day: int) -> States:
        """The states ``day``'s readings fold into: those of the segment holding it."""
        table = self._days.get((tenant, period))
        if table is None:
            table = self._days[(tenant, period)] = self.day_states(tenant, period)
        return table[day] if isinstance(table, list) else table

    def day_states(self, tenant: str, period: Period) -> States | list[States]:
        """The states each day of the month folds into: for a month cut into segments, a list
        indexed by day (1-based); else the month's one set of states."""
        cut = self.cutter(tenant, period) if self.cutter else (whole_month(period),)
        if len(cut) == 1:
            return self.segment(tenant, period, cut[0])
        table: list[States] = []
        for first, end in cut:
            table += [self.segment(tenant, period, (first, end))] * (end - first)
        return table[:1] + table  # day 0 does not exist: any states stand in for it

    def segment(self, tenant: str, period: Period, days: Days) -> States:
        segments = self.states.get((tenant, period))
        if segments is None:
            segments = self.states[(tenant, period)] = {}
        states = segments.get(days)
        if states is None:
            states = segments[days] = {}
        return states

    def merge(self, other: UsageBook) -> None:
        for tenant_period, other_segments in other.states.items():
            self.merge_states(tenant_period, other_segments)

    def merge_states(self, tenant_period: TenantPeriod, other_segments: Segments) -> None:
        """Merge in one tenant's states for one period (another book's, which stay its own)."""
        segments = self.states.setdefault(tenant_period, {})
        for days, other_states in other_segments.items():
            states = segments.setdefault(days, {})
            for key, state in other_states.items():
                mine = states.get(key)
                if mine is None:
                    mine = states[key] = new_state(state.kind)  # a copy: see the docstring
                mine.merge(state)

    def tenants(self, period: Period) -> list[str]:
        return sorted(tenant for tenant, p in self.states if p == period)

    def tenant_periods(self) -> Iterator[TenantPeriod]:
        return iter(sorted(self.states))

    def periods(self) -> list[Period]:
        return sorted({period for _, period in self.states})

    def segments(self, tenant: str, period: Period) -> Segments:
        return self.states.get((tenant, period), {})

    def quantities(self, catalog: Catalog, tenant: str, period: Period) -> dict[StateKey, Fraction]:
        """The whole period's quantities, time-weighted ones from the period's own samples only."""
        merged = merged_states(self.segments(tenant, period).values())
        return {key: meter_quantity(catalog.meters[key[0]], state, period) for key, state in merged.items()}

    # serialisation, for partial states kept in a ledger ----------------------------------------

    def to_json(self) -> list[dict[str, Any]]:
        entries = []
        for (tenant, period), segments in self.states.items():
            month = whole_month(period)
            for days, states in segments.items():
                if not states:
                    continue  # a segment of a cut month that has no usage
                entry: dict[str, Any] = {"tenant": tenant, "period": str(period)}
                if days != month:
                    entry["days"] = list(days)  # the whole month, by far the most usual, goes unsaid
                entry["states"] = [
                    {"meter": meter, "group": [group_to_json(v) for v in group], "state": state.to_json()}
                    for (meter, group), state in states.items()
                ]
                entries.append(entry)
        return entries

    @classmethod
    def from_json(cls, catalog: Catalog, data: list[dict[str, Any]]) -> UsageBook:
        book = cls()
        for entry in data:
            period = Period.parse(entry["period"])
            first, end = entry.get("days") or whole_month(period)
            states = book.segment(entry["tenant"], period, (first, end))
            for item in entry["states"]:
                meter = catalog.meters[item["meter"]]
                group = tuple(group_from_json(v) for v in item["group"])
                states[(meter.key, group)] = state_from_json(meter.aggregation, item["state"])
        return book


def fold(states: States, readings: Iterable[Reading], time: datetime, event_id: str) -> None:
    """Add one event's readings to a tenant's states."""
    for key, meter, value in readings:
        state = states.get(key)
        if state is None:
            state = states[key] = new_state(meter.aggregation)
        state.add(value, time, event_id)


def merged_states(parts: Iterable[States]) -> States:
    """One state per key for all the parts together (copies: the parts stay as they are)."""
    merged: States = {}
    for states in parts:
        for key, state in states.items():
            mine = merged.get(key)
            if mine is None:
                mine = merged[key] = new_state(state.kind)
            mine.merge(state)
    return merged


# --- one tenant's period, split by invoice ------------------------------------------------------


@dataclass
class SplitUsage:
    parts: list[dict[StateKey, Fraction]]
    """The usage of each range asked for."""
    rest: dict[StateKey, Fraction]
    """The usage of the days no range covers."""
    closing: dict[StateKey, Decimal]
    """Time-weighted values in force at the period's end."""


def split_usage(
    catalog: Catalog, period: Period, segments: Segments, ranges: Sequence[Days], opening: Opening
) -> SplitUsage:
    """The tenant's usage in each of ``ranges`` (disjoint runs of days) and in the days between them.

    A time-weighted value holds from its sample until the next, across segments and periods (the
    value in force at the period's start is ``opening``); it counts as usage of a range when a
    sample falls in it or a value other than 0 is in force at its start.
    """
    gaps = _complement(ranges, whole_month(period))
    inside = [_segments_within(segments, days, period) for days in ranges]
    between = [days for days in segments if not any(_contains(r, days) for r in ranges)]
    counted = [_counted(catalog, period, [segments[d] for d in within]) for within in inside]
    rest = _counted(catalog, period, [segments[days] for days in between]) if between else {}
    timed = _timed(catalog, segments, opening)
    for key, held in timed.items():
        for days, within, usage in zip(ranges, inside, counted, strict=True):
            held.add_to(usage, key, period, [days], sampled=not held.segments.isdisjoint(within))
        held.add_to(rest, key, period, gaps, sampled=not held.segments.isdisjoint(between))
    return SplitUsage(counted, rest, _closing(timed, period))


def closing_values(
    catalog: Catalog, period: Period, segments: Segments, opening: Opening
) -> dict[StateKey, Decimal]:
    """Time-weighted values in force at the period's end (``split_usage``'s, without the rest)."""
    return _closing(_timed(catalog, segments, opening), period)


@dataclass
class _Held:
    """One time-weighted (meter, group) of a tenant's period: its samples, and the value it opened with."""

    meter: Meter
    state: TimeWeightedState | None
    """The period's samples, of every segment; None: none, only a value carried in."""
    opening: Decimal | None
    segments: set[Days]
    """The segments its samples fell in."""

    def in_force(self, at: datetime) -> Decimal | None:
        value = self.state.closing(at) if self.state is not None else None
        return self.opening if value is None else value

    def add_to(
        self,
        usage: dict[StateKey, Fraction],
        key: StateKey,
        period: Period,
        ranges: Sequence[Days],
        sampled: bool,
    ) -> None:
        """Add the quantity held over ``ranges`` to ``usage``, if the key was used in them."""
        if not ranges:
            return
        total = Fraction(0)
        used = sampled
        for first, end in ranges:
            if self.state is not None:
                start = day_start(period, first)
                held = self.state.held(start, day_start(period, end), self.opening)
                total = held if len(ranges) == 1 else total + held
                used = used or bool(self.in_force(start))
            elif self.opening:
                total += Fraction(self.opening) * 24 * (end - first)
                used = True
        if used:
            divide_by = self.meter.divide_by
            usage[key] = total / Fraction(divide_by) if divide_by is not None else total


def _timed(catalog: Catalog, segments: Segments, opening: Opening) -> dict[StateKey, _Held]:
    """Each time-weighted key: carried in, or sampled in the period (its segments' samples together)."""
    timed: dict[StateKey, _Held] = {}
    for key, in_force in opening.items():
        meter = catalog.meters.get(key[0])
        if meter is not None and meter.aggregation is Aggregation.TIME_WEIGHTED:
            timed[key] = _Held(meter, None, in_force, set())
    for days, states in segments.items():
        for key, state in states.items():
            if not isinstance(state, TimeWeightedState):
                continue
            held = timed.get(key)
            if held is None:
                held = timed[key] = _Held(catalog.meters[key[0]], None, opening.get(key), set())
            if held.state is None:
                held.state = state  # only read, unless a second segment's samples join it
            else:
                if len(held.segments) == 1:
                    first, held.state = held.state, TimeWeightedState()
                    held.state.merge(first)
                held.state.merge(state)
            held.segments.add(days)
    return timed


def _closing(timed: Mapping[StateKey, _Held], period: Period) -> dict[StateKey, Decimal]:
    return {key: value for key, held in timed.items() if (value := held.in_force(period.end)) is not None}


def _counted(catalog: Catalog, period: Period, parts: list[States]) -> dict[StateKey, Fraction]:
    """The quantities of every key but the time-weighted ones, over the parts together."""
    states = parts[0] if len(parts) == 1 else merged_states(parts)
    meters = catalog.meters
    timed = Aggregation.TIME_WEIGHTED
    return {
        key: meter_quantity(meters[key[0]], state, period)
        for key, state in states.items()
        if state.kind is not timed
    }


def _segments_within(segments: Segments, days: Days, period: Period) -> list[Days]:
    within = []
    for segment in segments:
        if _contains(days, segment):
            within.append(segment)
        elif _overlaps(days, segment):
            raise UsageSplitError(
                f"usage of days {segment[0]}-{segment[1] - 1} of {period} was kept together, and a"
                f" subscription boundary now cuts it (days {days[0]}-{days[1] - 1})"
            )
    return within


def _contains(outer: Days, inner: Days) -> bool:
    return outer[0] <= inner[0] and inner[1] <= outer[1]


def _overlaps(a: Days, b: Days) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _complement(ranges: Sequence[Days], month: Days) -> list[Days]:
    gaps = []
    day = month[0]
    for first, end in sorted(ranges):
        if first > day:
            gaps.append((day, first))
        day = max(day, end)
    if day < month[1]:
        gaps.append((day, month[1]))
    return gaps


def group_to_json(value: GroupValue) -> Any:
    """JSON has no Decimal: a group value with a fraction is written {"decimal": "1.5"}."""
    return {"decimal": str(value)} if type(value) is Decimal else value


def group_from_json(value: Any) -> GroupValue:
    return Decimal(value["decimal"]) if type(value) is dict else value
