"""The event nearly every producer writes, decoded and checked in C: one msgspec Struct per event
type, in a union tagged by ``type``, whose data is a Struct of the keys its meters read
(``Metering.plain``), each typed as they read it, and of the keys the other plain types' meters
read, each optional text, integer or null (producers tend to send one key set with every type:
``kafka.egress`` carries the ``cluster`` that ingress groups by). No other key is read here.

What the typed decode refuses (an extension attribute, data of another shape, a float where an
integer goes, an unknown type, ...) is read by ``records.read_usage``, which reads it alike or
rejects it with its reason; the event's ``take`` sends there too what decodes but may read
otherwise (a repeated key, an escaped string, a decimal out of bounds or negative, a line
that may outgrow a ledger item). What is left is read exactly as ``read_usage`` reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import UNSET, Meta, UnsetType
from msgspec.structs import astuple

from meterline.aggregation import new_state
from meterline.catalog import Aggregation, Meter
from meterline.events import common_time, exact_number
from meterline.metering import Metering, Plain
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
msgspec's ``Decimal(text)``, checked in ``take`` (bounds, sign)."""
_Number = _Int | Decimal
_Identifier = str | _Int
_Other = _Int | str | None | UnsetType
"""A group key, or a key another plain type's meters read: absent (UNSET) told from null."""

_NON_NEGATIVE = (_SUM, _TIMED)
_QUOTES: dict[type, int] = {UnsetType: 0, type(None): 2, int: 2, str: 4, Decimal: 2}
"""The quotes a data field spells in JSON without a backslash: its key's two, a text value's two."""
_ENVELOPE_QUOTES = 2 * 13
"""Seven keys and six text attributes: specversion, id, source, type, subject and time."""
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
"""As integers: ``in`` with a bytes needle raises and clears a TypeError first (it tries an integer)."""
_encode_into = msgspec.json.Encoder().encode_into

Group = Any
"""A meter's group as the Struct spells it: None, one key's value or UNSET, or a tuple of them."""
Slots = list[Any]
"""One set of states' plain meters, slot by slot: a meter that groups nothing has its one state
(None until made); one that groups has each state by its group as the Struct spells it, which a
lookup hashes in a fraction of the state key's time (UNSET and None: one state); last, the states
themselves (``PlainDecoder.slots``), so that one lookup finds both."""


def _methods(
    plain: tuple[Plain, ...], names: dict[str, str], first_slot: int, limit: int, last: tuple[int, int] | None
) -> dict[str, Any]:
    """How one event type's typed events are checked, their time read, deduplicated and added to
    their meters' states (``take``), or, once taken, added by the read loop (``fold(slots,
    time)``): methods of the type's Struct, which the read loop calls without looking the type
    up; ``first_slot`` numbers its meters among all plain meters (their place in ``Slots``);
    ``last``: the (year, month) whose events ``take`` may fold."""
    numbers = {names[name] for _, _, kind, name, _ in plain if name and kind is not _UNIQUE_COUNT}
    check = _check_source(tuple(sorted(numbers)), limit)
    adds, namespace = _fold_source(plain, names, first_slot)
    namespace.update(
        {"read_as_decoded": _read_as_decoded, "encode_into": _encode_into, "common_time": common_time},
        written=bytearray(),  # what encode_into writes, kept: a bytes object per event costs a third of it
        fromisoformat=datetime.fromisoformat,
        **_month_bounds(last),
    )
    source = _FOLD.format(adds=adds) + _TAKE.format(check=check, adds=adds)
    exec(source, namespace)  # spelled from templates, numbers and field names only: see _fold_source
    return {name: namespace[name] for name in ("fold", "take")}


def _month_bounds(last: tuple[int, int] | None) -> dict[str, datetime]:
    """The first instant of the month ``last`` and of the next, in UTC: ``take`` folds the events
    between them (none for no month; December 9999's last microsecond is left to the read loop)."""
    if last is None:
        return {"last_start": _LATEST, "last_end": _LATEST}
    year, month = last
    start = datetime(year, month, 1, tzinfo=UTC)
    if month < 12:
        return {"last_start": start, "last_end": datetime(year, month + 1, 1, tzinfo=UTC)}
    return {"last_start": start, "last_end": datetime(year + 1, 1, 1, tzinfo=UTC) if year < 9999 else _LATEST}


_LATEST = datetime.max.replace(tzinfo=UTC)


def _read_as_decoded(line: bytes, data: Any) -> bool:
    """Whether every quote in the line bounds a string (no backslash) and there are twice as many
    as the keys and text values decoded (no key repeated, no text read as a number), and each
    Decimal is in bounds and of the sign its meters need."""
    tally = sum(map(_QUOTES.__getitem__, map(type, astuple(data))))
    if line.count(_QUOTE) != _ENVELOPE_QUOTES + tally or _BACKSLASH in line:
        return False
    for name, value in zip(data.__struct_fields__, astuple(data), strict=True):
        if type(value) is Decimal:
            if not value or exact_number(str(value)) is None:
                return False  # zero may be spelled otherwise by read_usage; beyond the bounds: rejected
            if value < 0 and name in type(data).non_negative:
                return False
    return True


_CHECK = """\
    size = len(line)
    if size > {limit}:
        return None  # read_usage checks what its ledger records would take
    data = event.data
    if {holds_decimal}:
        if not read_as_decoded(line, data):
            return None
    else:
        if line[-1] == 10:
            size -= 1
        encode_into(event, written)
        if len(written) != size and not read_as_decoded(line, data):
            return None
"""
_FOLD = """\
def fold(event, slots, time):
    data = event.data
{adds}\
"""
_TAKE = """\
def take(event, line, seen, latest):
{check}\
    text = event.time
    size = len(text)
    if (
        (size == 24 or size == 20 or size == 27)
        and text[-1] == "Z"
        and text[4:17:3] == "--T::"
        and (size == 20 or text[19] == ".")
    ):
        try:
            # common_time's checks for its spellings in UTC, inline, but for isascii: fromisoformat
            # reads ASCII digits only
            time = fromisoformat(text)
        except ValueError:
            return None
    else:
        time = common_time(text)
        if time is None:
            return None
    if not last_start <= time < last_end:  # the month: two comparisons (month and year are looked up)
        return time
    event_id = event.id
    if event_id in seen:
        return time
    slots = latest.get(event.subject)
    if slots is None:
        return time
    seen[event_id] = line
{adds}\
    return True
"""
"""``take(line, seen, latest)``: None when the event is ``read_usage``'s to read; True when it was
folded, a first event of its id in the last month with its tenant's slots in ``latest``; else
its time, for the read loop to deduplicate and fold."""


def _check_source(numbers: tuple[str, ...], limit: int) -> str:
    """Whether ``read_usage`` would read a decoded line as it was decoded: the body of a check
    that returns None when it might not.

    Without a Decimal, msgspec writes the event back no longer than any spelling of it: a
    repeated key, whitespace, an escape, an integer spelled otherwise all make the line longer
    than that. So a line of the same length holds none of them. A Decimal may be written longer
    than it was spelled, and may have been a string: a line with one, or of another length
    (spaced loosely, say), is checked by its quotes (``_read_as_decoded``).

    ``numbers``: the fields that may hold a Decimal; ``limit``: the longest line whose ledger
    records cannot outgrow an item."""
    holds_decimal = " or ".join(f"type(data.{field}) is Decimal" for field in numbers) or "False"
    return _CHECK.format(limit=int(limit), holds_decimal=holds_decimal)


_ADDS = {
    _COUNT: "    state.count += 1\n",
    _SUM: """\
    value = data.{value}
    total = state.total + value
    if type(total) is int:
        state.total = total
    else:  # a Decimal in it: the state adds exactly (the sum just made may have been rounded)
        state.add(value, time, event.id)
""",
    _UNIQUE_COUNT: """\
    value = data.{value}
    state.seen.add(value if type(value) is str else str(value))
""",
}
_ADD = """\
    value = data.{value}
    state.add(Decimal(value) if type(value) is int else value, time, event.id)
"""
"""How a meter's state takes a checked value: a count counts, a sum's integers stay integers, a
unique count keeps text, the others (max, min, latest, time-weighted) keep Decimals."""


def _fold_source(
    plain: tuple[Plain, ...], names: dict[str, str], first_slot: int
) -> tuple[str, dict[str, Any]]:
    """The adds of a checked event's data to its type's meters' states, written out meter by
    meter (a loop over the meters, or a function per meter, costs as much again), and the values
    they use.

    The source is spelled from this module's templates, slot numbers and field names (``f0``,
    ``f1``, ...) alone; no text from the catalog or an event reaches it: the meters themselves
    are passed as values (``new_state_<n>``)."""
    lines = []
    namespace: dict[str, Any] = {"Decimal": Decimal}
    for number, (key, meter, aggregation, value_key, group_by) in enumerate(plain):
        slot = first_slot + number
        fields = [f"data.{names[name]}" for name in group_by]
        group = "None" if not fields else fields[0] if len(fields) == 1 else f"({', '.join(fields)},)"
        namespace[f"new_state_{number}"] = _new_state(slot, meter, key, len(group_by) > 1)
        if key is not None:  # one state, in the slot itself
            lines.append(f"    state = slots[{slot}]\n")
            found_by = "None"
        else:
            lines.append(f"    group = {group}\n    state = slots[{slot}].get(group)\n")
            found_by = "group"
        lines.append(f"    if state is None:\n        state = new_state_{number}(slots, {found_by})\n")
        add = _ADDS.get(aggregation, _ADD)
        lines.append(add.format(value=names[value_key]) if value_key is not None else add)
    return "".join(lines), namespace


def _new_state(slot: int, meter: Meter, key: Any, several: bool) -> Callable[[Slots, Group], Any]:
    """A slot's state for a group it has not seen in these states: found in the states (a reading
    ``read_usage`` read may have made it), else new."""

    def new(slots: Slots, group: Group) -> Any:
        states = slots[-1]
        state_key = key if key is not None else (meter.key, _group_key(group, several))
        state = states.get(state_key)
        if state is None:
            state = states[state_key] = new_state(meter.aggregation)
        if key is not None:
            slots[slot] = state
        else:
            slots[slot][group] = state
        return state

    return new


def _group_key(group: Group, several: bool) -> tuple[Any, ...]:
    """The group as a state key spells it: a tuple, None for a key that is absent."""
    parts = group if several else (group,)
    return tuple([None if part is UNSET else part for part in parts])


Decode = Callable[[bytes], Any]


class PlainDecoder:
    """The catalog's plain event types in one cell, decoded in C: ``decode`` raises
    ``msgspec.DecodeError`` (or ``RecursionError``) for what it refuses; each decoded event has
    its type's ``take`` and ``fold`` (``_methods``); ``slot_meters`` are the plain
    meters of all types, by slot. ``item_bytes``: what a ledger item may hold
    (``records.MAX_ITEM_BYTES``); ``last``: the (year, month) whose events ``take`` folds itself."""

    def __init__(self, metering: Metering, item_bytes: int, last: tuple[int, int] | None = None) -> None:
        keys = sorted({name for plain in metering.plain.values() for name in _keys(plain)})
        names = {key: f"f{number}" for number, key in enumerate(keys)}
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
            limit = item_bytes // metering.weights[event_type] - 1024
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
                namespace=_methods(plain, names, len(self.slot_meters), limit, last),
                tag_field="type",
                tag=event_type,
                forbid_unknown_fields=True,
                gc=False,
            )
            self.slot_meters.extend(plain)
            encoded.append(event)
        self._grouping = [key is None for key, *_ in self.slot_meters]
        self.decode: Decode | None = None
        if encoded:
            self.decode = msgspec.json.Decoder(Union[tuple(encoded)]).decode  # noqa: UP007

    def slots(self, states: States) -> Slots:
        """Empty slots of ``states``."""
        slots: Slots = [{} if grouping else None for grouping in self._grouping]
        slots.append(states)
        return slots


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
