"""One tenant's period of usage split by invoice: the quantities of each subscription's days, of
the days no subscription covers, and the time-weighted values it hands on to the next period.

Counted aggregations (sum, count, max, min, latest, unique_count) take the segments that fall in
a run of days. Time-weighted samples carry their times, so their hours split at any instant: a
value holds from its sample until the next, across segments and periods (the value in force at
the period's start is the ``opening``, carried from the periods before).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from meterline.aggregation import divided, meter_quantity
from meterline.catalog import Aggregation, Catalog, Meter
from meterline.periods import Period
from meterline.terms import Days, day_start, whole_month
from meterline.timeweighted import TimeWeightedState
from meterline.usage import Segments, StateKey, States, merged_states

Opening = Mapping[StateKey, Decimal]
"""Time-weighted values in force at a period's start, by (meter key, group)."""
_TIMED = Aggregation.TIME_WEIGHTED


class UsageSplitError(ValueError):
    """Usage kept in a segment that a subscription boundary cuts: it cannot be split exactly."""


@dataclass
class SplitUsage:
    parts: list[dict[StateKey, Fraction]]
    """The usage of each range asked for."""
    rest: dict[StateKey, Fraction]
    """The usage of the days no range covers."""
    closing: dict[StateKey, Decimal]
    """Time-weighted values in force at the period's end."""


def split_usage(
    catalog: Catalog,
    period: Period,
    segments: Segments,
    ranges: Sequence[Days],
    opening: Opening,
    until: datetime | None = None,
    priced: Sequence[Collection[str]] | None = None,
) -> SplitUsage:
    """The tenant's usage in each of ``ranges`` (disjoint runs of days) and in the days between them.

    A time-weighted value holds from its sample until the next, across segments and periods (the
    value in force at the period's start is ``opening``); it counts as usage of a range when a
    sample falls in it or a value other than 0 is in force at its start. ``until``: spend to date
    (SPEC §7), the last value holds until then, not until the period ends. ``priced``: for each
    range, the meters whose quantities are wanted (its invoice's plan prices no other); None: all.
    The days between always get every meter's.
    """
    if len(ranges) == 1 and len(segments) <= 1 and ranges[0] == whole_month(period):
        # the usual tenant: one subscription all month, its usage kept whole
        wanted = priced[0] if priced is not None else None
        states = next(iter(segments.values()), {})
        return _whole_month(catalog, period, states, opening, until, wanted)
    return _split(catalog, period, segments, ranges, opening, until, priced)


def _split(
    catalog: Catalog,
    period: Period,
    segments: Segments,
    ranges: Sequence[Days],
    opening: Opening,
    until: datetime | None = None,
    priced: Sequence[Collection[str]] | None = None,
) -> SplitUsage:
    """``split_usage`` of any ranges and segments."""
    gaps = _complement(ranges, whole_month(period))
    inside = [_segments_within(segments, days, period) for days in ranges]
    between = [days for days in segments if not any(_contains(r, days) for r in ranges)]
    wanted = priced if priced is not None else [None] * len(ranges)
    counted = [
        _counted(catalog, period, [segments[d] for d in within], meters)
        for within, meters in zip(inside, wanted, strict=True)
    ]
    rest = _counted(catalog, period, [segments[days] for days in between]) if between else {}
    timed = _timed(catalog, segments, opening)
    for key, held in timed.items():
        for days, within, usage, meters in zip(ranges, inside, counted, wanted, strict=True):
            if meters is None or key[0] in meters:
                held.add_to(usage, key, period, [days], not held.segments.isdisjoint(within), until)
        held.add_to(rest, key, period, gaps, not held.segments.isdisjoint(between), until)
    return SplitUsage(counted, rest, _closing(timed, period))


def _whole_month(
    catalog: Catalog,
    period: Period,
    states: States,
    opening: Opening,
    until: datetime | None,
    wanted: Collection[str] | None,
) -> SplitUsage:
    """``split_usage`` of one range, the whole month, and its one segment's ``states`` (or none):
    every state read once, no range or segment compared, nothing left for the rest."""
    meters = catalog.meters
    usage: dict[StateKey, Fraction] = {}
    timed: dict[StateKey, tuple[Meter, TimeWeightedState]] = {}
    for key, state in states.items():
        meter_key = key[0]
        if state.kind is _TIMED and isinstance(state, TimeWeightedState):
            timed[key] = meters[meter_key], state
        elif wanted is None or meter_key in wanted:
            usage[key] = meter_quantity(meters[meter_key], state, period)
    closing: dict[StateKey, Decimal] = {}
    if not timed and not opening:
        return SplitUsage([usage], {}, closing)
    month = whole_month(period)
    start, stop = day_start(period, month[0]), day_start(period, month[1])
    if until is not None:
        stop = max(start, min(stop, until))
    end = period.end
    # in ``_split``'s order: the values carried in, then the keys first sampled in the period
    for key, in_force in opening.items():
        meter = meters.get(key[0])
        if meter is None or meter.aggregation is not _TIMED:
            continue
        sampled = timed.pop(key, None)
        if sampled is not None:
            _hold_sampled(usage, closing, key, *sampled, in_force, start, stop, end, wanted)
            continue
        if in_force and (wanted is None or key[0] in wanted):
            hours = Fraction(_microseconds(stop - start), 3_600_000_000)
            usage[key] = divided(meter, Fraction(in_force) * hours)
        closing[key] = in_force
    for key, (meter, state) in timed.items():
        _hold_sampled(usage, closing, key, meter, state, None, start, stop, end, wanted)
    return SplitUsage([usage], {}, closing)


def _hold_sampled(
    usage: dict[StateKey, Fraction],
    closing: dict[StateKey, Decimal],
    key: StateKey,
    meter: Meter,
    state: TimeWeightedState,
    in_force: Decimal | None,
    start: datetime,
    stop: datetime,
    end: datetime,
    wanted: Collection[str] | None,
) -> None:
    """A time-weighted key sampled in the whole month's one segment: its quantity, if wanted, and
    its closing value."""
    if wanted is None or key[0] in wanted:
        usage[key] = divided(meter, state.held(start, stop, in_force))
    value = state.closing(end)
    value = in_force if value is None else value
    if value is not None:
        closing[key] = value


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
        until: datetime | None = None,
    ) -> None:
        """Add the quantity held over ``ranges`` (cut at ``until``) to ``usage``, if the key was used
        in them."""
        if not ranges:
            return
        total = Fraction(0)
        used = sampled
        for first, end in ranges:
            start, stop = day_start(period, first), day_start(period, end)
            if until is not None:
                stop = max(start, min(stop, until))
            if self.state is not None:
                held = self.state.held(start, stop, self.opening)
                total = held if len(ranges) == 1 else total + held
                used = used or bool(self.in_force(start))
            elif self.opening:
                total += Fraction(self.opening) * Fraction(_microseconds(stop - start), 3_600_000_000)
                used = True
        if used:
            usage[key] = divided(self.meter, total)


def _microseconds(span: timedelta) -> int:
    return (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds


def _timed(catalog: Catalog, segments: Segments, opening: Opening) -> dict[StateKey, _Held]:
    """Each time-weighted key: carried in, or sampled in the period (its segments' samples together)."""
    timed: dict[StateKey, _Held] = {}
    for key, in_force in opening.items():
        meter = catalog.meters.get(key[0])
        if meter is not None and meter.aggregation is Aggregation.TIME_WEIGHTED:
            timed[key] = _Held(meter, None, in_force, set())
    for days, states in segments.items():
        for key, state in states.items():
            if state.kind is not _TIMED or not isinstance(state, TimeWeightedState):
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
    if not timed:
        return {}
    end = period.end
    return {key: value for key, held in timed.items() if (value := held.in_force(end)) is not None}


def _counted(
    catalog: Catalog, period: Period, parts: list[States], wanted: Collection[str] | None = None
) -> dict[StateKey, Fraction]:
    """The quantities of every key but the time-weighted ones, over the parts together (``wanted``:
    of those meters only)."""
    states = parts[0] if len(parts) == 1 else merged_states(parts)
    meters = catalog.meters
    return {
        key: meter_quantity(meters[key[0]], state, period)
        for key, state in states.items()
        if state.kind is not _TIMED and (wanted is None or key[0] in wanted)
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
