"""Accumulated usage: aggregate states per tenant and period, per meter and group."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from meterline.aggregation import AggregateState, meter_quantity, new_state, state_from_json
from meterline.catalog import Catalog
from meterline.metering import Group, GroupValue, Measurement, Reading
from meterline.periods import Period

TenantPeriod = tuple[str, Period]
StateKey = tuple[str, Group]
"""(meter key, group)"""


class UsageBook:
    """Mergeable: books filled from any split of the same measurements merge to the same book."""

    def __init__(self) -> None:
        self.states: dict[TenantPeriod, dict[StateKey, AggregateState]] = {}

    def record(
        self, tenant: str, period: Period, measurements: Iterable[Measurement], time: datetime, event_id: str
    ) -> None:
        readings = [((m.meter.key, m.group), m.meter, m.value) for m in measurements]
        fold(self.states_of(tenant, period), readings, time, event_id)

    def states_of(self, tenant: str, period: Period) -> dict[StateKey, AggregateState]:
        """The tenant's states for the period, to ``fold`` readings into."""
        states = self.states.get((tenant, period))
        if states is None:
            states = self.states[(tenant, period)] = {}
        return states

    def merge(self, other: UsageBook) -> None:
        for tenant_period, other_states in other.states.items():
            self.merge_states(tenant_period, other_states)

    def merge_states(self, tenant_period: TenantPeriod, other_states: dict[StateKey, AggregateState]) -> None:
        """Merge in one tenant's states for one period (another book's, which stay its own)."""
        states = self.states.setdefault(tenant_period, {})
        for key, state in other_states.items():
            mine = states.get(key)
            if mine is None:
                mine = states[key] = new_state(state.kind)  # a copy: see the docstring
            mine.merge(state)

    def tenants(self, period: Period) -> list[str]:
        return sorted(tenant for tenant, p in self.states if p == period)

    def tenant_periods(self) -> Iterator[TenantPeriod]:
        return iter(sorted(self.states))

    def quantities(self, catalog: Catalog, tenant: str, period: Period) -> dict[StateKey, Fraction]:
        states = self.states.get((tenant, period), {})
        return {key: meter_quantity(catalog.meters[key[0]], state, period) for key, state in states.items()}

    # serialisation, for partial states kept in a ledger ----------------------------------------

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "tenant": tenant,
                "period": str(period),
                "states": [
                    {"meter": meter, "group": [_group_json(v) for v in group], "state": state.to_json()}
                    for (meter, group), state in states.items()
                ],
            }
            for (tenant, period), states in self.states.items()
        ]

    @classmethod
    def from_json(cls, catalog: Catalog, data: list[dict[str, Any]]) -> UsageBook:
        book = cls()
        for entry in data:
            states = book.states.setdefault((entry["tenant"], Period.parse(entry["period"])), {})
            for item in entry["states"]:
                meter = catalog.meters[item["meter"]]
                group = tuple(_group_from_json(v) for v in item["group"])
                states[(meter.key, group)] = state_from_json(meter.aggregation, item["state"])
        return book


def fold(
    states: dict[StateKey, AggregateState], readings: Iterable[Reading], time: datetime, event_id: str
) -> None:
    """Add one event's readings to a tenant's period states."""
    for key, meter, value in readings:
        state = states.get(key)
        if state is None:
            state = states[key] = new_state(meter.aggregation)
        state.add(value, time, event_id)


def _group_json(value: GroupValue) -> Any:
    """JSON has no Decimal: a group value with a fraction is written {"decimal": "1.5"}."""
    return {"decimal": str(value)} if type(value) is Decimal else value


def _group_from_json(value: Any) -> GroupValue:
    return Decimal(value["decimal"]) if type(value) is dict else value
