"""The event nearly every producer writes, decoded and checked in C: one msgspec Struct per event
type, in a union tagged by ``type``, whose data is a Struct of exactly the keys the catalog's
plain meters read (``Metering.plain``), each typed as its meters read it.

What the typed decode refuses (an extension attribute, data of another shape, a float where an
integer goes, an unknown type, ...) is read by ``records.read_usage``, which reads it alike or
rejects it with its reason; ``PlainType.checked`` sends there too what decodes but may read
otherwise (a repeated key, an escaped string, a decimal out of bounds or negative, a line
that may outgrow a ledger item). What is left is read exactly as ``read_usage`` reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from operator import attrgetter
from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import UNSET, Meta, UnsetType
from msgspec.structs import astuple

from meterline.aggregation import new_state
from meterline.catalog import Aggregation, Meter
from meterline.events import exact_number
from meterline.metering import Metering, Plain, Reading
from meterline.records import MAX_ITEM_BYTES
from meterline.usage import States

_SUM, _COUNT, _UNIQUE_COUNT, _TIMED = (
    Aggregation.SUM,
    Aggregation.COUNT,
    Aggregation.UNIQUE_COUNT,
    Aggregation.TIME_WEIGHTED,
)

_Text = Annotated[str, Meta(min_length=1)]
_Int = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
"""An integer orjson reads (but for 2**63 to 2**64 - 1, which msgspec cannot bound: read_usage)."""
_Amount = Annotated[int, Meta(ge=0, le=2**63 - 1)] | Decimal
"""A summed or time-weighted value: a negative integer is read_usage's to reject; a Decimal is
msgspec's ``Decimal(text)``, checked in ``checked`` (bounds, sign)."""
_Number = _Int | Decimal
_Identifier = str | _Int
_Other = _Int | str | None | UnsetType
"""A group key, or a key another plain type's meters read: absent (UNSET) told from null."""

_NON_NEGATIVE = (_SUM, _TIMED)
_DECIMAL = 1 << 20
"""Added to a data Struct's quote tally per Decimal: a flag that costs no second pass."""
_QUOTES: dict[type, int] = {UnsetType: 0, type(None): 2, int: 2, str: 4, Decimal: 2 + _DECIMAL}
"""The quotes a data field spells in JSON without a backslash: its key's two, a text value's two."""
_ENVELOPE_QUOTES = 2 * 13
"""Seven keys and six text attributes: specversion, id, source, type, subject and time."""
_QUOTE, _BACKSLASH = b'"', b"\\"

Group = Any
"""A meter's group as the Struct spells it: None, one key's value or UNSET, or a tuple of them."""
Slots = list[dict[Group, Any]]
"""One set of states' plain meters, slot by slot: each state by its group as the Struct spells
it, which a lookup hashes in a fraction of the state key's time (UNSET and None: one state)."""
Add = Callable[[Any, Slots, States, Any, str], None]
"""One meter's add of a checked event's data: (data, slots, states, time, event id)."""


class PlainType:
    """How one event type's typed events are checked and read: ``slot`` numbers its meters among
    all plain meters (their place in ``Slots``)."""

    __slots__ = ("adds", "limit", "readers")

    def __init__(self, plain: tuple[Plain, ...], names: dict[str, str], first_slot: int, weight: int) -> None:
        self.limit = MAX_ITEM_BYTES // weight - 1024
        """The longest line whose ledger records cannot outgrow an item (read_usage checks others)."""
        self.adds: tuple[Add, ...] = tuple(
            _add(first_slot + number, reader, names) for number, reader in enumerate(plain)
        )
        self.readers: tuple[Callable[[Any], Reading], ...] = tuple(
            _reading(reader, names) for reader in plain
        )

    def checked(self, line: bytes, event: Any) -> bool:
        """Whether ``read_usage`` would read the decoded ``line`` as it decoded: no backslash (so
        every quote bounds a string), twice as many quotes as the keys and text values decoded
        (none repeated, no text read as a number), not too long, and each Decimal in bounds and
        of the sign its meters need."""
        tally = sum(map(_QUOTES.__getitem__, map(type, astuple(event.data))))
        if line.count(_QUOTE) != _ENVELOPE_QUOTES + (tally & (_DECIMAL - 1)) or _BACKSLASH in line:
            return False
        if len(line) > self.limit:
            return False
        return tally < _DECIMAL or _decimals_read_alike(event.data)

    def readings(self, data: Any) -> list[Reading]:
        """A checked event's readings, as ``Metering.readings`` reads them (a sum's integer
        stays an int)."""
        return [read(data) for read in self.readers]


def _decimals_read_alike(data: Any) -> bool:
    for name, value in zip(data.__struct_fields__, astuple(data), strict=True):
        if type(value) is Decimal:
            if not value or exact_number(str(value)) is None:
                return False  # zero may be spelled otherwise by read_usage; beyond the bounds: rejected
            if value < 0 and name in type(data).non_negative:
                return False
    return True


def _add(slot: int, reader: Plain, names: dict[str, str]) -> Add:
    key, meter, aggregation, value_key, group_by = reader
    group_of = _group_getter(group_by, names)
    value_of = attrgetter(names[value_key]) if value_key is not None else None

    def state_of(slots: Slots, states: States, group: Group) -> Any:
        by_group = slots[slot]
        state = by_group.get(group)
        if state is None:
            state = by_group[group] = _state(states, meter, key, group, len(group_by) > 1)
        return state

    if aggregation is _COUNT:

        def add_count(data: Any, slots: Slots, states: States, time: Any, event_id: str) -> None:
            by_group = slots[slot]
            group = group_of(data)
            state = by_group.get(group)
            if state is None:
                state = state_of(slots, states, group)
            state.count += 1

        return add_count
    assert value_of is not None
    if aggregation is _SUM:

        def add_sum(data: Any, slots: Slots, states: States, time: Any, event_id: str) -> None:
            by_group = slots[slot]
            group = group_of(data)
            state = by_group.get(group)
            if state is None:
                state = state_of(slots, states, group)
            value = value_of(data)
            total = state.total
            if type(value) is int and type(total) is int:
                state.total = total + value
            else:
                state.add(value, time, event_id)

        return add_sum
    convert = _identifier if aggregation is _UNIQUE_COUNT else _decimal

    def add(data: Any, slots: Slots, states: States, time: Any, event_id: str) -> None:
        state_of(slots, states, group_of(data)).add(convert(value_of(data)), time, event_id)

    return add


def _reading(reader: Plain, names: dict[str, str]) -> Callable[[Any], Reading]:
    key, meter, aggregation, value_key, group_by = reader
    group_of = _group_getter(group_by, names)
    several = len(group_by) > 1
    value_of = attrgetter(names[value_key]) if value_key is not None else lambda data: None
    convert = _identifier if aggregation is _UNIQUE_COUNT else _decimal if aggregation is not _SUM else _same

    def read(data: Any) -> Reading:
        value = convert(value_of(data))
        if key is not None:
            return key, meter, value
        return (meter.key, _group_key(group_of(data), several)), meter, value

    return read


def _group_getter(group_by: tuple[str, ...], names: dict[str, str]) -> Callable[[Any], Group]:
    if not group_by:
        return lambda data: None
    return attrgetter(*[names[name] for name in group_by])  # several: a tuple


def _group_key(group: Group, several: bool) -> tuple[Any, ...]:
    """The group as a state key spells it: a tuple, None for a key that is absent."""
    parts = group if several else (group,)
    return tuple([None if part is UNSET else part for part in parts])


def _state(states: States, meter: Meter, key: Any, group: Group, several: bool) -> Any:
    """The state a group adds to: found in ``states`` (a reading ``read_usage`` read may have
    made it), else new."""
    if key is None:
        key = (meter.key, _group_key(group, several))
    state = states.get(key)
    if state is None:
        state = states[key] = new_state(meter.aggregation)
    return state


def _identifier(value: str | int) -> str:
    return value if type(value) is str else str(value)


def _decimal(value: int | Decimal) -> Decimal:
    return Decimal(value) if type(value) is int else value  # a state that keeps its values keeps Decimals


def _same(value: Any) -> Any:
    return value


Decode = Callable[[bytes], Any]


class PlainDecoder:
    """The catalog's plain event types in one cell, decoded in C: ``decode`` raises
    ``msgspec.DecodeError`` (or ``RecursionError``) for what it refuses; ``types`` gives each
    decoded event's ``PlainType`` by its class."""

    def __init__(self, metering: Metering) -> None:
        keys = sorted({name for plain in metering.plain.values() for name in _keys(plain)})
        names = {key: f"f{number}" for number, key in enumerate(keys)}
        self.types: dict[type, PlainType] = {}
        self.slot_meters: list[Plain] = []
        encoded: list[type] = []
        for event_type, plain in metering.plain.items():
            roles = _roles(plain)
            if roles is None:
                continue  # a key read two ways: read_usage reads the type
            data = msgspec.defstruct(
                "Data",
                [(names[key], kind) for key, kind in roles.items() if kind is not _Other]
                + [(names[key], _Other, UNSET) for key in keys if roles.get(key, _Other) is _Other],
                rename={names[key]: key for key in keys},
                forbid_unknown_fields=True,
                gc=False,
            )
            data.non_negative = frozenset(  # type: ignore[attr-defined]
                names[name] for _, _, aggregation, name, _ in plain if name and aggregation in _NON_NEGATIVE
            )
            event = msgspec.defstruct(
                "Event",
                [
                    ("specversion", Literal["1.0"]),
                    ("id", _Text),
                    ("source", _Text),
                    ("subject", _Text),
                    ("time", str),
                    ("data", data),
                ],
                tag_field="type",
                tag=event_type,
                forbid_unknown_fields=True,
                gc=False,
            )
            weight = metering.weights[event_type]
            self.types[event] = PlainType(plain, names, len(self.slot_meters), weight)
            self.slot_meters.extend(plain)
            encoded.append(event)
        self.decode: Decode | None = None
        if encoded:
            self.decode = msgspec.json.Decoder(Union[tuple(encoded)]).decode  # noqa: UP007
        self.encode = msgspec.json.Encoder(order="sorted").encode
        """A decoded event's canonical content when its data holds no Decimal: keys sorted, as
        ``events.canonical_content`` writes it."""


def _keys(plain: tuple[Plain, ...]) -> Iterable[str]:
    for _, _, _, name, group_by in plain:
        if name is not None:
            yield name
        yield from group_by


def _roles(plain: tuple[Plain, ...]) -> Mapping[str, Any] | None:
    """Each data key the type's meters read, typed as they read it; None when one key is read two
    ways (a value and a group, or a number and an identifier)."""
    roles: dict[str, Any] = {}
    for _, _, aggregation, name, group_by in plain:
        wanted = [(key, _Other) for key in group_by]
        if name is not None:
            wanted.append((name, _value_type(aggregation)))
        for key, kind in wanted:
            found = roles.setdefault(key, kind)
            if found is not kind:
                if {found, kind} == {_Amount, _Number}:
                    roles[key] = _Amount  # the stricter: a negative number is rejected either way
                else:
                    return None
    return roles


def _value_type(aggregation: Aggregation) -> Any:
    if aggregation in _NON_NEGATIVE:
        return _Amount
    if aggregation is _UNIQUE_COUNT:
        return _Identifier
    return _Number
