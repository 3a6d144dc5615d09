"""Aggregations as mergeable states.

Each state folds in measurements one at a time and merges with another state of the same kind;
folding chunks separately and merging them gives the state of folding everything at once, in
any order. The streaming functions rely on this: each batch writes a partial state and a period's
quantity is the merge of its partials. Quantities come out as exact ``Fraction``s. The
time-weighted state, whose samples a ledger summarises and archives, has a module of its own
(``timeweighted``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any, ClassVar, Protocol, Self

from meterline.catalog import Aggregation, Meter
from meterline.instants import spelled
from meterline.money import decimal_ratio
from meterline.periods import Period
from meterline.timeweighted import TimeWeightedState

Value = Decimal | int | str | None
"""A measured value: a Decimal or an int, an identifier's text (unique_count), or None (count)."""


class AggregateState(Protocol):
    kind: ClassVar[Aggregation]

    def add(self, value: Value, time: datetime, event_id: str) -> None: ...

    def merge(self, other: Self) -> None: ...

    def quantity(self, period: Period) -> Fraction: ...

    def to_json(self) -> Any: ...

    def merge_json(self, data: Any) -> None:
        """``merge`` of the state ``to_json`` wrote as ``data``, without making that state."""


class SumState:
    kind = Aggregation.SUM
    __slots__ = ("total",)

    def __init__(self, total: Decimal | int = 0) -> None:
        self.total = total

    def add(self, value: Value, time: datetime, event_id: str) -> None:
        total = self.total
        if type(value) is int and type(total) is int:
            self.total = total + value  # integers stay integers until a fraction appears
        else:
            self.total = _EXACT.add(total, value)  # a number: its meter's values are numbers

    def merge(self, other: SumState) -> None:
        self.add(other.total, _EPOCH, "")

    def quantity(self, period: Period) -> Fraction:
        return Fraction(self.total)

    def to_json(self) -> Any:
        return str(self.total)

    def merge_json(self, data: Any) -> None:
        self.total = _EXACT.add(self.total, Decimal(data))

    @classmethod
    def from_json(cls, data: Any) -> SumState:
        return cls(Decimal(data))


class CountState:
    kind = Aggregation.COUNT
    __slots__ = ("count",)

    def __init__(self, count: int = 0) -> None:
        self.count = count

    def add(self, value: Value, time: datetime, event_id: str) -> None:
        self.count += 1

    def merge(self, other: CountState) -> None:
        self.count += other.count

    def quantity(self, period: Period) -> Fraction:
        return Fraction(self.count)

    def to_json(self) -> Any:
        return self.count

    def merge_json(self, data: Any) -> None:
        self.count += int(data)

    @classmethod
    def from_json(cls, data: Any) -> CountState:
        return cls(int(data))


class MaxState:
    kind = Aggregation.MAX
    __slots__ = ("extreme",)

    def __init__(self, extreme: Decimal | None = None) -> None:
        self.extreme = extreme

    def add(self, value: Value, time: datetime, event_id: str) -> None:
        assert isinstance(value, Decimal)
        if self.extreme is None or self._beats(value, self.extreme):
            self.extreme = value

    def merge(self, other: Self) -> None:
        if other.extreme is not None:
            self.add(other.extreme, _EPOCH, "")

    @staticmethod
    def _beats(value: Decimal, current: Decimal) -> bool:
        return value > current

    def quantity(self, period: Period) -> Fraction:
        return Fraction(self.extreme) if self.extreme is not None else Fraction(0)

    def to_json(self) -> Any:
        return None if self.extreme is None else str(self.extreme)

    def merge_json(self, data: Any) -> None:
        if data is not None:
            value = Decimal(data)
            if self.extreme is None or self._beats(value, self.extreme):
                self.extreme = value

    @classmethod
    def from_json(cls, data: Any) -> Self:
        return cls(None if data is None else Decimal(data))


class MinState(MaxState):
    kind = Aggregation.MIN
    __slots__ = ()

    @staticmethod
    def _beats(value: Decimal, current: Decimal) -> bool:
        return value < current


class UniqueCountState:
    kind = Aggregation.UNIQUE_COUNT
    __slots__ = ("seen",)

    def __init__(self, seen: set[str] | None = None) -> None:
        self.seen = seen if seen is not None else set()

    def add(self, value: Value, time: datetime, event_id: str) -> None:
        assert isinstance(value, str)
        self.seen.add(value)

    def merge(self, other: UniqueCountState) -> None:
        self.seen |= other.seen

    def quantity(self, period: Period) -> Fraction:
        return Fraction(len(self.seen))

    def to_json(self) -> Any:
        return sorted(self.seen)

    def merge_json(self, data: Any) -> None:
        self.seen.update(data)

    @classmethod
    def from_json(cls, data: Any) -> UniqueCountState:
        return cls(set(data))


Sample = tuple[datetime, str, Decimal]
"""A value at an instant: (time, event id, value), which orders samples by time, then by the event
id (the tie-break SPEC §3 names), then by value. A tuple: a partial folds one per event."""


class LatestState:
    kind = Aggregation.LATEST
    __slots__ = ("latest",)

    def __init__(self, latest: Sample | None = None) -> None:
        self.latest = latest

    def add(self, value: Value, time: datetime, event_id: str) -> None:
        assert isinstance(value, Decimal)
        sample = (time, event_id, value)
        latest = self.latest
        # Two sources may send one id at one time: the greater value wins, whatever the order.
        if latest is None or sample > latest:
            self.latest = sample

    def merge(self, other: LatestState) -> None:
        theirs = other.latest
        if theirs is not None and (self.latest is None or theirs > self.latest):
            self.latest = theirs

    def quantity(self, period: Period) -> Fraction:
        return Fraction(self.latest[2]) if self.latest is not None else Fraction(0)

    def to_json(self) -> Any:
        latest = self.latest
        return None if latest is None else [spelled(latest[0]), latest[1], str(latest[2])]

    def merge_json(self, data: Any) -> None:
        if data is not None:
            time, event_id, latest = datetime.fromisoformat(data[0]), data[1], self.latest
            if latest is None or (time, event_id) >= latest[:2]:  # else it loses
                self.add(Decimal(data[2]), time, event_id)

    @classmethod
    def from_json(cls, data: Any) -> LatestState:
        return cls(None if data is None else (datetime.fromisoformat(data[0]), data[1], Decimal(data[2])))


STATE_TYPES: dict[Aggregation, Any] = {
    state.kind: state
    for state in (SumState, CountState, MaxState, MinState, UniqueCountState, LatestState, TimeWeightedState)
}


def new_state(aggregation: Aggregation) -> AggregateState:
    state: AggregateState = STATE_TYPES[aggregation]()
    return state


def meter_quantity(meter: Meter, state: AggregateState, period: Period) -> Fraction:
    divide_by = meter.divide_by
    if divide_by is None:
        return state.quantity(period)
    if isinstance(state, SumState):  # the usual divided meter, bytes billed as GB: one Fraction, of integers
        total = state.total
        numerator, denominator = (total, 1) if type(total) is int else total.as_integer_ratio()
        by_numerator, by_denominator = decimal_ratio(divide_by)
        return Fraction(numerator * by_denominator, denominator * by_numerator)
    return divided(meter, state.quantity(period))


def divided(meter: Meter, quantity: Fraction) -> Fraction:
    """``quantity`` in the unit the meter bills: divided by its ``divide_by``, if any."""
    if meter.divide_by is None:
        return quantity
    numerator, denominator = decimal_ratio(meter.divide_by)
    return Fraction(quantity.numerator * denominator, quantity.denominator * numerator)  # one Fraction made


_EPOCH = datetime(1970, 1, 1)


def _exact_context() -> Any:
    from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Inexact

    return Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact])


_EXACT = _exact_context()
