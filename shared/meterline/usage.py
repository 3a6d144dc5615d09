"""Accumulated usage: aggregate states per tenant and period, per meter and group."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from fractions import Fraction
from typing import Any

from meterline.aggregation import AggregateState, meter_quantity, new_state, state_from_json
from meterline.catalog import Catalog
from meterline.metering import Group, Measurement
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
        states = self.states.get((tenant, period))
        if states is None:
            states = self.states[(tenant, period)] = {}
        for measurement in measurements:
            meter = measurement.meter
            key = (meter.key, measurement.group)
            state = states.get(key)
            if state is None:
                state = states[key] = new_state(meter.aggregation)
            state.add(measurement.value, time, event_id)

    def merge(self, other: UsageBook) -> None:
        for tenant_period, other_states in other.states.items():
            states = self.states.setdefault(tenant_period, {})
            for key, state in other_states.items():
                mine = states.get(key)
                if mine is None:
                    states[key] = state
                else:
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
                    {"meter": meter, "group": list(group), "state": state.to_json()}
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
                states[(meter.key, tuple(item["group"]))] = state_from_json(meter.aggregation, item["state"])
        return book
