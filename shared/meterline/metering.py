"""From a valid event to the measurements its meters take (or the reason it is rejected)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from meterline.aggregation import Value
from meterline.catalog import Aggregation, Meter
from meterline.events import EventError, Reason, UsageEvent
from meterline.markets import DIMENSIONS, LOCAL, Market

GroupValue = str | int | Decimal | bool | None
Group = tuple[GroupValue, ...]
"""A meter's group_by values, in its group_by order; a missing key groups as None."""


@dataclass(frozen=True, slots=True)
class Measurement:
    meter: Meter
    group: Group
    value: Value


Reading = tuple[tuple[str, Group], Meter, Value]
"""A measurement as a plain tuple: the state it adds to (meter key, group), its meter, its value."""

_COUNT = Aggregation.COUNT
_UNIQUE_COUNT = Aggregation.UNIQUE_COUNT
_NON_NEGATIVE = (Aggregation.SUM, Aggregation.TIME_WEIGHTED)


class Metering:
    """The catalog's meters indexed by event type, in one cell: its market fills in the groups'
    ``$cloud`` and ``$region``."""

    def __init__(self, meters_by_type: Mapping[str, tuple[Meter, ...]], market: Market = LOCAL) -> None:
        self.meters_by_type = meters_by_type
        self.market = market
        stamps = {dimension: market.value(dimension) for dimension in DIMENSIONS}
        # An ungrouped meter always adds to the same state: its key is made once, not per event.
        self._state_keys = {
            event_type: tuple(
                (meter, None if meter.group_by else (meter.key, ()), stamps if _by_market(meter) else None)
                for meter in meters
            )
            for event_type, meters in meters_by_type.items()
        }

    def measure(self, event: UsageEvent) -> list[Measurement]:
        readings = self.readings(event.type, event.data)
        return [Measurement(meter, group, value) for (_, group), meter, value in readings]

    def readings(self, event_type: str, data: Mapping[str, Any]) -> list[Reading]:
        """What ``measure`` measures, as tuples."""
        meters = self._state_keys.get(event_type)
        if not meters:
            raise EventError(Reason.UNKNOWN_TYPE, f"no meter counts events of type {event_type!r}")
        return [
            (
                key or (meter.key, group_of(meter, data if stamps is None else {**data, **stamps})),
                meter,
                None if meter.aggregation is _COUNT else read_value(meter, data),
            )
            for meter, key, stamps in meters
        ]


def _by_market(meter: Meter) -> bool:
    return any(name in DIMENSIONS for name in meter.group_by)


def group_of(meter: Meter, data: Mapping[str, Any]) -> Group:
    group = tuple([data.get(name) for name in meter.group_by])
    for name, value in zip(meter.group_by, group, strict=True):
        if isinstance(value, _CONTAINERS):
            raise EventError(
                Reason.INVALID_VALUE, f"data.{name} groups meter {meter.key!r}, so it must be a scalar"
            )
        if type(value) is bool or type(value) is Decimal:
            return tuple(_group_value(value) for value in group)
    return group


def _group_value(value: GroupValue) -> GroupValue:
    """One spelling per group: 5.0 groups with 5 as 5, and true (which Python takes for 1) as "true"."""
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is Decimal:
        return int(value) if value == value.to_integral_value() else value.normalize()
    return value


_CONTAINERS = (dict, list)


def read_value(meter: Meter, data: Mapping[str, Any]) -> Value:
    aggregation = meter.aggregation
    if aggregation is _COUNT:
        return None
    assert meter.value is not None
    value: Any = data
    for step in meter.value:
        if not isinstance(value, dict) or step not in value:
            raise EventError(
                Reason.INVALID_VALUE, f"data.{'.'.join(meter.value)} is missing (meter {meter.key!r})"
            )
        value = value[step]
    if aggregation is _UNIQUE_COUNT:
        return _identifier(meter, value)
    number = Decimal(value) if type(value) is int else _number(meter, value)
    if aggregation in _NON_NEGATIVE and number < 0:
        raise EventError(
            Reason.INVALID_VALUE,
            f"data.{'.'.join(meter.value)} is negative; meter {meter.key!r} ({meter.aggregation}) needs >= 0",
        )
    return number


def _number(meter: Meter, value: Any) -> Decimal:
    kind = type(value)
    if kind is int:
        return Decimal(value)
    if kind is Decimal and _priceable(value):
        return value  # type: ignore[no-any-return]
    if kind is str:
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = Decimal("NaN")
        if _priceable(number) and value.strip() == value:
            return number
    path = ".".join(meter.value or ())
    raise EventError(
        Reason.INVALID_VALUE,
        f"data.{path} must be a finite number or decimal string (meter {meter.key!r}), not {value!r}",
    )


_MAX_EXPONENT = 1000
"""Beyond 10^±1000 an exact fraction grows without use (10^±10^9 never finishes): reject it."""


def _priceable(number: Decimal) -> bool:
    exponent = number.as_tuple().exponent
    return isinstance(exponent, int) and -_MAX_EXPONENT <= exponent <= _MAX_EXPONENT


def _identifier(meter: Meter, value: Any) -> str:
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is int or kind is Decimal:
        return str(value)
    path = ".".join(meter.value or ())
    raise EventError(
        Reason.INVALID_VALUE,
        f"data.{path} must be a string or number identifier (meter {meter.key!r}), not {value!r}",
    )
