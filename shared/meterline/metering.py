"""From a valid event to the measurements its meters take (or the reason it is rejected)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from meterline.aggregation import Value
from meterline.catalog import Aggregation, Meter
from meterline.events import EventError, Reason, UsageEvent

GroupValue = str | int | Decimal | bool | None
Group = tuple[GroupValue, ...]
"""A meter's group_by values, in its group_by order; a missing key groups as None."""


@dataclass(frozen=True, slots=True)
class Measurement:
    meter: Meter
    group: Group
    value: Value


_NON_NEGATIVE = (Aggregation.SUM, Aggregation.TIME_WEIGHTED)


class Metering:
    """The catalog's meters indexed by event type."""

    def __init__(self, meters_by_type: Mapping[str, tuple[Meter, ...]]) -> None:
        self.meters_by_type = meters_by_type

    def measure(self, event: UsageEvent) -> list[Measurement]:
        meters = self.meters_by_type.get(event.type)
        if not meters:
            raise EventError(Reason.UNKNOWN_TYPE, f"no meter counts events of type {event.type!r}")
        data = event.data
        return [Measurement(meter, group_of(meter, data), read_value(meter, data)) for meter in meters]


def group_of(meter: Meter, data: Mapping[str, Any]) -> Group:
    if not meter.group_by:
        return ()
    group: list[GroupValue] = []
    for name in meter.group_by:
        value = data.get(name)
        if isinstance(value, dict | list):
            raise EventError(
                Reason.INVALID_VALUE, f"data.{name} groups meter {meter.key!r}, so it must be a scalar"
            )
        group.append(value)
    return tuple(group)


def read_value(meter: Meter, data: Mapping[str, Any]) -> Value:
    if meter.aggregation is Aggregation.COUNT:
        return None
    assert meter.value is not None
    value: Any = data
    for step in meter.value:
        if not isinstance(value, dict) or step not in value:
            raise EventError(
                Reason.INVALID_VALUE, f"data.{'.'.join(meter.value)} is missing (meter {meter.key!r})"
            )
        value = value[step]
    if meter.aggregation is Aggregation.UNIQUE_COUNT:
        return _identifier(meter, value)
    number = _number(meter, value)
    if number < 0 and meter.aggregation in _NON_NEGATIVE:
        raise EventError(
            Reason.INVALID_VALUE,
            f"data.{'.'.join(meter.value)} is negative; meter {meter.key!r} ({meter.aggregation}) needs >= 0",
        )
    return number


def _number(meter: Meter, value: Any) -> Decimal:
    kind = type(value)
    if kind is int:
        return Decimal(value)
    if kind is Decimal and value.is_finite():
        return value  # type: ignore[no-any-return]
    if kind is str:
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = Decimal("NaN")
        if number.is_finite() and value.strip() == value:
            return number
    path = ".".join(meter.value or ())
    raise EventError(
        Reason.INVALID_VALUE,
        f"data.{path} must be a finite number or decimal string (meter {meter.key!r}), not {value!r}",
    )


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
