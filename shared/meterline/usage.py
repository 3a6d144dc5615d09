"""Accumulated usage: aggregate states per tenant and period, per segment of days, per meter and group.

A tenant's month is kept in segments cut at its subscriptions' boundaries (``terms.segments``), so
the usage of each invoice (one per subscription active in the period) is whole segments: a max or a
distinct count over part of a month cannot be taken from the month's state (``splits``). Almost
every tenant has one segment, the whole month.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from meterline.aggregation import (
    STATE_TYPES,
    AggregateState,
    meter_quantity,
    new_state,
)
from meterline.catalog import Catalog
from meterline.metering import Group, GroupValue, Measurement, Reading
from meterline.periods import Period
from meterline.terms import Days, whole_month

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


class UsageBook:
    """Mergeable: books filled from any split of the same measurements merge to the same book."""

    def __init__(self, cutter: Cutter | None = None) -> None:
        self.states: dict[TenantPeriod, Segments] = {}
        self.cutter = cutter
        """None: one segment, the whole month."""
        self._days: dict[Period, dict[str, States | list[States]]] = {}

    def record(
        self, tenant: str, period: Period, measurements: Iterable[Measurement], time: datetime, event_id: str
    ) -> None:
        readings = [((m.meter.key, m.group), m.meter, m.value) for m in measurements]
        fold(self.states_on(tenant, period, time.day), readings, time, event_id)

    def states_of(self, tenant: str, period: Period) -> States:
        """The states of a month the book does not cut (no cutter): its one segment."""
        return self.segment(tenant, period, whole_month(period))

    def states_on(self, tenant: str, period: Period, day: int) -> States:
        """The states ``day``'s readings fold into: those of the segment holding it."""
        tables = self.days_of(period)
        table = tables.get(tenant)
        if table is None:
            table = tables[tenant] = self.day_states(tenant, period)
        return table[day] if isinstance(table, list) else table

    def days_of(self, period: Period) -> dict[str, States | list[States]]:
        """Per tenant, ``day_states`` of the period, as far as asked for already (the caller adds
        the tenants it asks for next)."""
        tables = self._days.get(period)
        if tables is None:
            tables = self._days[period] = {}
        return tables

    def day_states(self, tenant: str, period: Period) -> States | list[States]:
        """The states each day of the month folds into: for a month cut into segments, a list
        indexed by day (1-based); else the month's one set of states."""
        cut = self.cutter(tenant, period) if self.cutter else (whole_month(period),)
        if len(cut) == 1:
            if (tenant, period) not in self.states:  # a tenant's first usage of the month here: usual
                states: States = {}
                self.states[(tenant, period)] = {cut[0]: states}
                return states
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

    def merge(self, other: UsageBook, adopt: bool = False) -> None:
        """Merge in another book; ``adopt``: a book read for this merge only, whose states this
        book may take over instead of copying (it must not be used again)."""
        for tenant_period, other_segments in other.states.items():
            self.merge_states(tenant_period, other_segments, adopt)

    def merge_states(
        self, tenant_period: TenantPeriod, other_segments: Segments, adopt: bool = False
    ) -> None:
        """Merge in one tenant's states for one period (another book's, which stay its own unless
        ``adopt``: then they may become this book's, and the other book is not used again)."""
        segments = self.states.get(tenant_period)
        if segments is None:
            if adopt:
                self.states[tenant_period] = other_segments
                return
            segments = self.states[tenant_period] = {}
        for days, other_states in other_segments.items():
            states = segments.get(days)
            if states is None:
                if adopt:
                    segments[days] = other_states
                    continue
                states = segments[days] = {}
            for key, state in other_states.items():
                mine = states.get(key)
                if mine is None:
                    if adopt:
                        states[key] = state
                        continue
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
        months: dict[Period, tuple[str, Days]] = {}
        groups: dict[StateKey, list[Any]] = {}
        """Each key's group as JSON writes it, made once: a book holds the same few thousand keys."""
        for (tenant, period), segments in self.states.items():
            known = months.get(period)
            if known is None:
                known = months[period] = (str(period), whole_month(period))
            text, month = known
            for days, states in segments.items():
                if not states:
                    continue  # a segment of a cut month that has no usage
                entry: dict[str, Any] = {"tenant": tenant, "period": text}
                if days != month:
                    entry["days"] = list(days)  # the whole month, by far the most usual, goes unsaid
                entry["states"] = [
                    {
                        "meter": key[0],
                        "group": group if (group := groups.get(key)) is not None else _group(groups, key),
                        "state": state.to_json(),
                    }
                    for key, state in states.items()
                ]
                entries.append(entry)
        return entries

    @classmethod
    def from_json(cls, catalog: Catalog, data: list[dict[str, Any]]) -> UsageBook:
        book = cls()
        book.merge_json(catalog, data)
        return book

    def merge_json(self, catalog: Catalog, data: list[dict[str, Any]]) -> None:
        """Merge in the entries ``to_json`` wrote, their states decoded straight into this book
        (without a book of their own to copy them from)."""
        readers = _state_readers(catalog)
        books = self.states
        months: dict[str, tuple[Period, Days]] = {}
        for entry in data:
            text = entry["period"]
            known = months.get(text)
            if known is None:
                period = Period.parse(text)
                known = months[text] = (period, whole_month(period))
            period, days = known
            cut = entry.get("days")
            if cut:
                first, end = cut
                days = (first, end)
            segments = books.get(tenant_period := (entry["tenant"], period))  # ``segment``, inline
            if segments is None:
                segments = books[tenant_period] = {}
            states = segments.get(days)
            if states is None:
                states = segments[days] = {}
            for item in entry["states"]:
                meter_key, read, ungrouped = readers[item["meter"]]
                group = item["group"]
                if not group:
                    key: StateKey = ungrouped
                elif len(group) == 1:
                    value = group[0]
                    key = (meter_key, (group_from_json(value) if type(value) is dict else value,))
                else:
                    # a group value with a fraction is the only one JSON spells as an object
                    values = [group_from_json(v) for v in group] if dict in map(type, group) else group
                    key = (meter_key, tuple(values))
                mine = states.get(key)
                if mine is None:
                    states[key] = read(item["state"])
                else:
                    mine.merge_json(item["state"])


def _state_readers(
    catalog: Catalog,
) -> dict[str, tuple[str, Callable[[Any], AggregateState], StateKey]]:
    """For each meter key: the key as the catalog spells it, how to read its state's JSON, and its
    state key without a group."""
    meters = catalog.meters
    return {
        key: (meter.key, STATE_TYPES[meter.aggregation].from_json, (meter.key, ()))
        for key, meter in meters.items()
    }


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


def _group(groups: dict[StateKey, list[Any]], key: StateKey) -> list[Any]:
    """The key's group as JSON writes it, remembered in ``groups`` (the lists are only serialised)."""
    written = groups[key] = [group_to_json(value) for value in key[1]]
    return written


def group_to_json(value: GroupValue) -> Any:
    """JSON has no Decimal: a group value with a fraction is written {"decimal": "1.5"}."""
    return {"decimal": str(value)} if type(value) is Decimal else value


def group_from_json(value: Any) -> GroupValue:
    return Decimal(value["decimal"]) if type(value) is dict else value
