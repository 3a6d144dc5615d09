"""From a valid event to the measurements its meters take (or the reason it is rejected)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from meterline.aggregation import Value
from meterline.catalog import Aggregation, Meter
from meterline.events import (
    MAX_DIGITS,
    MAX_EXPONENT,
    MIN_EXPONENT,
    EventError,
    Reason,
    UsageEvent,
    exact_number,
    normalized,
)
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

Plain = tuple[tuple[str, Group] | None, Meter, Aggregation, str | None, tuple[str, ...]]
"""How a meter reads an event whose data is flat: its state key when it groups nothing, the meter,
its aggregation, the data key its value is read from (None for count) and its group_by keys."""

_COUNT = Aggregation.COUNT
_SUM = Aggregation.SUM
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
        self.weights = {
            event_type: sum(2 * (len(meter.group_by) + 3) for meter in meters) + 1
            for event_type, meters in meters_by_type.items()
        }
        """How many times over an event's text its ledger records may hold it, at most: each meter's
        state may keep each group value, the value, the id and the time, spelled no longer than the
        text spells them (see ``records.fits_ledger``), and twice that for safety."""
        self.plain: dict[str, tuple[Plain, ...]] = {
            event_type: tuple(
                (key, meter, meter.aggregation, meter.value[0] if meter.value else None, meter.group_by)
                for meter, key, _ in meters
            )
            for event_type, meters in self._state_keys.items()
            if meters
            and all(
                stamps is None and (meter.value is None or len(meter.value) == 1)
                for meter, _, stamps in meters
            )
        }
        """The event types whose every meter reads its value from a key of data itself and groups by
        no market dimension: the types `meterline rate` reads without ``readings`` when an event's
        data holds only text and integers (``offline.Metered``)."""
        self.plain_measurements = {kind: _plain_measurer(plain) for kind, plain in self.plain.items()}
        """Per plain type, what ``records`` reads from an event's data of text and integers: the
        readings as ``records.measurements_json`` spells them, or None (see ``_plain_measurer``)."""

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


PlainMeasurer = Callable[[dict[str, Any]], list[Any] | None]

_READS = {
    _SUM: "    {v} = data.get({name})\n    if type({v}) is not int or {v} < 0:\n        return None\n",
    _UNIQUE_COUNT: "    {v} = data.get({name})\n    if type({v}) is int:\n        {v} = str({v})\n"
    "    elif {v} is None:\n        return None\n",
}
_READS[Aggregation.TIME_WEIGHTED] = _READS[_SUM]
_READ = "    {v} = data.get({name})\n    if type({v}) is not int:\n        return None\n"
"""How a plain meter reads its value from data of text and integers: a summed or time-weighted
value is a non-negative integer, a unique count's identifier is text (an integer spelled as text),
the others' an integer; anything else only ``read_usage`` reads or rejects (None)."""


def _plain_measurer(plain: tuple[Plain, ...]) -> PlainMeasurer:
    """One function reading a plain type's readings from its data, written out meter by meter (a
    loop over the meters decides each meter's recipe again per event): an integer value is tagged
    as its digits whichever number it is read as (``Decimal(n)`` spells ``n``).

    Its source is spelled from the templates above and numbered names alone; no text from the
    catalog reaches it: data keys, meter keys and groups are passed as values (``name_<n>``)."""
    lines = ["def measure(data):\n"]
    namespace: dict[str, Any] = {}
    readings = []
    for number, (key, meter, aggregation, value_key, group_by) in enumerate(plain):
        namespace[f"meter_{number}"] = meter.key
        if value_key is None:
            value = "None"
        else:
            namespace[f"name_{number}"] = value_key
            lines.append(_READS.get(aggregation, _READ).format(v=f"value_{number}", name=f"name_{number}"))
            value = f"value_{number}" if aggregation is _UNIQUE_COUNT else f'{{"$d": str(value_{number})}}'
        if key is not None:
            namespace[f"group_{number}"] = key[1]
            group = f"group_{number}"
        else:
            names = [f"group_{number}_{index}" for index in range(len(group_by))]
            namespace.update(zip(names, group_by, strict=True))
            group = "(" + "".join(f"data.get({name}), " for name in names) + ")"
        readings.append(f"(meter_{number}, {group}, {value})")
    lines.append(f"    return [{', '.join(readings)}]\n")
    exec("".join(lines), namespace)  # see the docstring
    measure: PlainMeasurer = namespace["measure"]
    return measure


def _by_market(meter: Meter) -> bool:
    return any(name in DIMENSIONS for name in meter.group_by)


def group_of(meter: Meter, data: Mapping[str, Any]) -> Group:
    group = tuple([data.get(name) for name in meter.group_by])
    for value in group:
        if type(value) is not str:  # text is the one spelling that needs no checking
            return tuple(
                [_group_value(meter, name, value) for name, value in zip(meter.group_by, group, strict=True)]
            )
    return group


def _group_value(meter: Meter, name: str, value: Any) -> GroupValue:
    """One spelling per group: 5.0 groups with 5 as 5, true (which Python takes for 1) as "true",
    and an integer past 64 bits as a Decimal (ledgers write JSON with orjson, which takes 64 bits)."""
    kind = type(value)
    if kind is str or value is None:
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    if kind is Decimal:
        if value != value.to_integral_value():
            return normalized(value)
        value, kind = int(value), int
    if kind is int:
        return value if _SMALLEST_INT <= value < _INT_LIMIT else Decimal(value)
    raise EventError(
        Reason.INVALID_VALUE,
        f"data.{name} groups meter {meter.key!r}, so it must be a scalar, not {_shown(value)}",
    )


_SMALLEST_INT, _INT_LIMIT = -(2**63), 2**64
"""What orjson writes as an integer."""


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
    if kind is Decimal:
        return value  # type: ignore[no-any-return]  # read within the bounds (events.exact_number)
    if kind is str:
        number = exact_number(value)
        if number is not None:
            return number
    path = ".".join(meter.value or ())
    raise EventError(
        Reason.INVALID_VALUE,
        f"data.{path} must be a number, or a decimal string in JSON's number syntax, with at most"
        f" {MAX_DIGITS} significant digits and a magnitude from 1E{MIN_EXPONENT} to 1E+{MAX_EXPONENT + 1}"
        f" (meter {meter.key!r}), not {_shown(value)}",
    )


def _shown(value: Any) -> str:
    """The value in an error, cut short: a bad value may be the size of the whole event."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}… ({len(text):,} characters)"


def _identifier(meter: Meter, value: Any) -> str:
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if kind is int or kind is Decimal:
        return str(value)
    path = ".".join(meter.value or ())
    raise EventError(
        Reason.INVALID_VALUE,
        f"data.{path} must be a string or number identifier (meter {meter.key!r}), not {_shown(value)}",
    )
