"""Aggregations as mergeable states.

Each state folds in measurements one at a time and merges with another state of the same kind;
folding chunks separately and merging them gives the state of folding everything at once, in
any order. The streaming functions rely on this: each batch writes a partial state and a period's
quantity is the merge of its partials. Quantities come out as exact ``Fraction``s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, ClassVar, Protocol, Self

from meterline.catalog import Aggregation, Meter
from meterline.periods import Period

Value = Decimal | str | None
"""A measured value: a Decimal, an identifier's text (unique_count), or None (count)."""


class AggregateState(Protocol):
    kind: ClassVar[Aggregation]

    def add(self, value: Value, time: datetime, event_id: str) -> None: ...

    def merge(self, other: Self) -> None: ...

    def quantity(self, period: Period) -> Fraction: ...

    def to_json(self) -> Any: ...


class SumState:
    kind = Aggregation.SUM
    __slots__ = ("total",)

    def __init__(self, total: Decimal = Decimal(0)) -> None:
        self.total = total

    def add(self, value: Value, time: datetime, event_id: str) -> None:
        self.total = _EXACT.add(self.total, value)  # a Decimal: its meter's values are numbers

    def merge(self, other: SumState) -> None:
        self.total = _exact_add(self.total, other.total)

    def quantity(self, period: Period) -> Fraction:
        return Fraction(self.total)

    def to_json(self) -> Any:
        return str(self.total)

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

    @classmethod
    def from_json(cls, data: Any) -> UniqueCountState:
        return cls(set(data))


@dataclass(frozen=True, order=True, slots=True)
class Sample:
    """A value at an instant; samples order by (time, event id), the tie-break SPEC §3 names."""

    time: datetime
    event_id: str
    value: Decimal


class LatestState:
    kind = Aggregation.LATEST
    __slots__ = ("latest",)

    def __init__(self, latest: Sample | None = None) -> None:
        self.latest = latest

    def add(self, value: Value, time: datetime, event_id: str) -> None:
        assert isinstance(value, Decimal)
        latest = self.latest
        # Two sources may send one id at one time: the greater value wins, whatever the order.
        if latest is None or (time, event_id, value) > (latest.time, latest.event_id, latest.value):
            self.latest = Sample(time, event_id, value)

    def merge(self, other: LatestState) -> None:
        if other.latest is not None:
            self.add(other.latest.value, other.latest.time, other.latest.event_id)

    def quantity(self, period: Period) -> Fraction:
        return Fraction(self.latest.value) if self.latest is not None else Fraction(0)

    def to_json(self) -> Any:
        return None if self.latest is None else _sample_json(self.latest)

    @classmethod
    def from_json(cls, data: Any) -> LatestState:
        return cls(None if data is None else _sample_from_json(data))


class TimeWeightedState:
    """Keeps its samples: a sample's weight depends on the next one, which may arrive later."""

    kind = Aggregation.TIME_WEIGHTED
    __slots__ = ("samples",)

    def __init__(self, samples: list[Sample] | None = None) -> None:
        self.samples = samples if samples is not None else []

    def add(self, value: Value, time: datetime, event_id: str) -> None:
        assert isinstance(value, Decimal)
        self.samples.append(Sample(time, event_id, value))

    def merge(self, other: TimeWeightedState) -> None:
        self.samples.extend(other.samples)

    def quantity(self, period: Period) -> Fraction:
        """Σ value × hours held: until the next sample, the last one until the period ends."""
        ordered = self._ordered()
        ends = [sample[0] for sample in ordered[1:]]
        ends.append(period.end)
        # Exact: Σ value × microseconds held in integer-scaled Decimals, then one division to hours.
        total = Decimal(0)
        for (start, _, value), until in zip(ordered, ends, strict=True):
            held = until - start
            microseconds = (held.days * 86_400 + held.seconds) * 1_000_000 + held.microseconds
            total = _EXACT.add(total, _EXACT.multiply(value, microseconds))
        return Fraction(total) / _MICROSECONDS_PER_HOUR

    def held(self, start: datetime, end: datetime, opening: Decimal | None = None) -> Fraction:
        """Σ value × hours within [start, end): the value in force at ``start`` is the last sample
        before it, else ``opening``; each sample holds until the next, the last until ``end``."""
        in_force = opening
        total = Decimal(0)
        since = start
        for time, _, value in self._ordered():
            if time >= end:
                break
            if time < start:
                in_force = value
                continue
            if in_force is not None:
                total = _EXACT.add(total, _EXACT.multiply(in_force, _microseconds(time - since)))
            in_force, since = value, time
        if in_force is not None:
            total = _EXACT.add(total, _EXACT.multiply(in_force, _microseconds(end - since)))
        return Fraction(total) / _MICROSECONDS_PER_HOUR

    def closing(self, at: datetime) -> Decimal | None:
        """The value in force at ``at``: the last sample strictly before it, or None."""
        before = [(sample.time, sample.event_id, sample.value) for sample in self.samples if sample.time < at]
        return max(before)[2] if before else None

    def _ordered(self) -> list[tuple[datetime, str, Decimal]]:
        """The distinct samples by (time, event id), as tuples: sorting them costs no Python calls."""
        return sorted({(sample.time, sample.event_id, sample.value) for sample in self.samples})

    def to_json(self) -> Any:
        return [[time.isoformat(), event_id, str(value)] for time, event_id, value in self._ordered()]

    @classmethod
    def from_json(cls, data: Any) -> TimeWeightedState:
        return cls([_sample_from_json(item) for item in data])


STATE_TYPES: dict[Aggregation, Any] = {
    state.kind: state
    for state in (SumState, CountState, MaxState, MinState, UniqueCountState, LatestState, TimeWeightedState)
}


def new_state(aggregation: Aggregation) -> AggregateState:
    state: AggregateState = STATE_TYPES[aggregation]()
    return state


def state_from_json(aggregation: Aggregation, data: Any) -> AggregateState:
    state: AggregateState = STATE_TYPES[aggregation].from_json(data)
    return state


def meter_quantity(meter: Meter, state: AggregateState, period: Period) -> Fraction:
    quantity = state.quantity(period)
    return quantity / Fraction(meter.divide_by) if meter.divide_by is not None else quantity


_EPOCH = datetime(1970, 1, 1)
_MICROSECONDS_PER_HOUR = 3_600_000_000


def _exact_add(total: Decimal, value: Value) -> Decimal:
    assert isinstance(value, Decimal)
    exact: Decimal = _EXACT.add(total, value)
    return exact


def _microseconds(held: timedelta) -> int:
    return (held.days * 86_400 + held.seconds) * 1_000_000 + held.microseconds


def _sample_json(sample: Sample) -> list[str]:
    return [sample.time.isoformat(), sample.event_id, str(sample.value)]


def _sample_from_json(data: list[str]) -> Sample:
    return Sample(datetime.fromisoformat(data[0]), data[1], Decimal(data[2]))


def _exact_context() -> Any:
    from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Inexact

    return Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact])


_EXACT = _exact_context()
