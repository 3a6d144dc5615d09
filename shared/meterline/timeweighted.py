"""The time-weighted state: Σ value × hours held, merged incrementally and exactly.

A sample holds its value from its time until the next sample of the same state (SPEC §3), so a
sample's weight depends on a neighbour that may arrive later, or earlier. The state keeps, for
each UTC hour, a sorted list of *runs*: disjoint ranges of its samples in (time, id, value) order.
A run knows its first and last sample, how many samples it has and its *area* (Σ value ×
microseconds each sample holds until the next one in the run); that is all a total needs, and all
that placing new samples before or after the run needs. Its samples themselves are either at hand
(a raw run) or *archived*: kept by whoever stores the state (the ledger) and read back through a
``SampleArchive`` only when a new sample falls strictly inside the run, or a range of time starts
or ends inside it. That slow path is exact too, and checks the archive against the run.

Runs never span an hour, so a stored state holds one run per hour of usage whatever its number of
samples, and the slow path reads one hour of one state. A stored state's hour runs are moreover
kept as one *span*: written as they were and decoded only when a sample or a range of time falls
inside the span's range; otherwise (samples arriving in order, a total over the period) the span
counts as one run. What merging in order and totalling cost is then the same after a month of
samples as after an hour.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import operator
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, Inexact
from fractions import Fraction
from typing import Any, ClassVar, Protocol

from meterline.catalog import Aggregation
from meterline.instants import learn, spelled
from meterline.periods import Period

SampleKey = tuple[datetime, str, Decimal]
"""(time, event id, value): samples order by time, then id (SPEC §3's tie-break), then value."""
Columns = tuple[list[str], list[str], list[str]]
"""Samples as JSON text, column by column (times, ids, values): three lists of strings, which
cost the garbage collector nothing, where a list per sample would cost it one object each."""

_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact])
_MICROSECOND = timedelta(microseconds=1)
_HOUR = timedelta(hours=1)
_MICROSECONDS_PER_HOUR = 3_600_000_000
_ZERO = Decimal(0)
SPAN_AFTER_HOURS = 24
"""Fewer hour runs are stored as they are: decoding them costs little, and a span would add its
summary to the bytes of every small state."""


class ArchiveError(Exception):
    """Archived samples cannot be read back, or are not those their run summarises."""


class SampleArchive(Protocol):
    def samples(self, hour: datetime) -> Iterable[SampleKey]:
        """Every archived sample of this state in the hour starting at ``hour``."""


class Run:
    """Samples of one state in one hour, consecutive in its order: summarised, raw or archived."""

    __slots__ = ("archive", "area", "count", "encoded", "first", "last", "raw")

    def __init__(
        self,
        first: SampleKey,
        last: SampleKey,
        count: int,
        area: Decimal,
        raw: list[SampleKey] | None = None,
        encoded: Columns | None = None,
    ) -> None:
        self.first, self.last, self.count, self.area = first, last, count, area
        self.raw = raw
        """The samples, sorted and distinct; None while they are only encoded or archived."""
        self.encoded = encoded
        """The samples as JSON writes them, decoded only when needed."""
        self.archive: SampleArchive | None = None

    @classmethod
    def of(cls, samples: list[SampleKey]) -> Run:
        """A raw run of samples that are sorted and distinct (at least one)."""
        area = _area(samples) if len(samples) > 1 else _ZERO
        return cls(samples[0], samples[-1], len(samples), area, raw=samples)

    @property
    def archived(self) -> bool:
        return self.raw is None and self.encoded is None

    def samples(self) -> list[SampleKey]:
        if self.raw is not None:
            return self.raw
        if self.encoded is not None:
            times, ids, values = self.encoded
            self.raw = [(_time(t), i, Decimal(v)) for t, i, v in zip(times, ids, values, strict=True)]
            return self.raw
        return self._read_archive()

    def encode(self) -> Columns:
        if self.encoded is None:
            samples = self.samples()
            self.encoded = (
                [sample[0].isoformat() for sample in samples],
                [sample[1] for sample in samples],
                [str(sample[2]) for sample in samples],
            )
        return self.encoded

    def _read_archive(self) -> list[SampleKey]:
        """The slow path: this run's samples from the archive, checked against its summary."""
        where = f"the {self.count} samples from {_text(self.first)} to {_text(self.last)}"
        if self.archive is None:
            raise ArchiveError(f"{where} are archived, and no archive is attached to read them")
        first, last = self.first, self.last
        archived = self.archive.samples(_hour(first[0]))
        found = sorted({sample for sample in archived if first <= sample <= last})
        if len(found) != self.count or not found or (found[0], found[-1]) != (first, last):
            raise ArchiveError(f"the archive does not hold {where}: it has {len(found)} in that range")
        if _area(found) != self.area:
            raise ArchiveError(f"the archive holds {where}, but their area is not the run's")
        return found


class Span:
    """A stored state's hour runs, kept as written and decoded only when needed, summarised as one
    run: a total, or a sample placed before or after them, needs nothing else."""

    __slots__ = ("archive", "run", "written")

    def __init__(self, run: Run, written: list[Any]) -> None:
        self.run = run
        self.written = written
        self.archive: SampleArchive | None = None


class TimeWeightedState:
    kind: ClassVar[Aggregation] = Aggregation.TIME_WEIGHTED
    __slots__ = ("_hours", "_pending", "_span", "_tidied")

    def __init__(self) -> None:
        self._hours: dict[datetime, list[Run]] = {}
        """Runs per hour, each hour's sorted and disjoint; none inside the span's range."""
        self._pending: list[SampleKey] = []
        """Samples added one at a time, placed into runs when the state is next read or merged."""
        self._span: Span | None = None
        self._tidied = 0
        """How many of the pending samples are known sorted and distinct: ``_loose`` sorts them
        once, not on each of the reads a period's rating makes."""

    def add(self, value: Decimal | int | str | None, time: datetime, event_id: str) -> None:
        assert isinstance(value, Decimal)
        self._pending.append((time, event_id, value))

    def merge(self, other: TimeWeightedState) -> None:
        if not other._hours and other._span is None:  # raw samples only: they join the pending ones
            self._pending.extend(other._pending)
            if self._hours or self._span is not None:
                self._settle()
            return
        other._settle()
        self._settle()
        span = other._span
        if span is not None:
            if self._span is None and not any(_overlap(run, span.run) for run in self._all_hours()):
                self._span = span  # shared: a span is never changed, only replaced
            else:
                other._unfold()
        for hour, runs in list(other._hours.items()):
            self._place(hour, runs)

    def _place(self, hour: datetime, runs: list[Run]) -> None:
        mine = self._hours.get(hour)
        placed = self._hours[hour] = list(runs) if mine is None else _merged(mine + runs)
        span = self._span
        if span is not None and any(_overlap(run, span.run) for run in placed):
            self._unfold()  # its runs of this hour go where they belong among the placed ones

    def _unfold(self) -> None:
        """Decode the span into hour runs."""
        span, self._span = self._span, None
        if span is not None:
            runs = TimeWeightedState.from_json(span.written)
            if span.archive is not None:
                runs.attach(span.archive)
            self.merge(runs)
            self._settle()

    def _all_hours(self) -> Iterator[Run]:
        return itertools.chain.from_iterable(self._hours.values())

    # reading ---------------------------------------------------------------------------------

    def quantity(self, period: Period) -> Fraction:
        """Σ value × hours held in the period: each sample until the next, the last until the end."""
        return self.held(period.start, period.end)

    def held(self, start: datetime, end: datetime, opening: Decimal | None = None) -> Fraction:
        """Σ value × hours within [start, end). The value in force at ``start`` is that of the last
        sample before it, else ``opening`` (None: nothing is held until the first sample); each
        sample holds until the next one, the last until ``end``."""
        if end <= start:
            return Fraction(0)
        loose = self._loose()
        if loose is not None:
            total, in_force, since = _hold(loose, start, end, _ZERO, opening, start)
            if in_force is not None:
                total = _EXACT.add(total, _weight(in_force, end - since))
            return _hours(total)
        self._settle()
        if self._span is not None and (_inside(self._span.run, start) or _inside(self._span.run, end)):
            self._unfold()
        total = Decimal(0)
        in_force, since = opening, start
        for run in self._runs():
            if run.last[0] < start:
                in_force = run.last[2]
                continue
            if run.first[0] >= end:
                break
            if run.first[0] >= start and run.last[0] < end:
                if in_force is not None:
                    total = _EXACT.add(total, _weight(in_force, run.first[0] - since))
                if run.count > 1:
                    total = _EXACT.add(total, run.area)
                in_force, since = run.last[2], run.last[0]
                continue
            # the range starts or ends inside this run
            total, in_force, since = _hold(run.samples(), start, end, total, in_force, since)
        if in_force is not None:
            total = _EXACT.add(total, _weight(in_force, end - since))
        return _hours(total)

    def closing(self, at: datetime) -> Decimal | None:
        """The value in force at instant ``at``: the last sample strictly before it (None: none)."""
        loose = self._loose()
        if loose is not None:
            after = bisect.bisect_left(loose, (at,))  # (at,) sorts before every sample at ``at``
            return loose[after - 1][2] if after else None
        self._settle()
        if self._span is not None and _inside(self._span.run, at):
            self._unfold()
        for run in reversed(list(self._runs())):
            if run.first[0] >= at:
                continue
            if run.last[0] < at:
                return run.last[2]
            return [value for time, _, value in run.samples() if time < at][-1]
        return None

    def samples(self) -> list[SampleKey]:
        """Every sample, in order (archived ones read back)."""
        loose = self._loose()
        if loose is not None:
            return list(loose)
        return [sample for _, runs in self._runs_by_hour() for run in runs for sample in run.samples()]

    def _loose(self) -> list[SampleKey] | None:
        """A state of raw samples only (no runs, no span) is read from its samples directly,
        sorted and distinct: the common case off the ledger costs no run per hour."""
        if self._hours or self._span is not None:
            return None
        pending = self._pending
        if self._tidied == len(pending):  # samples are only ever added: none since the last sort
            return pending
        pending.sort()
        if any(map(operator.eq, pending, itertools.islice(pending, 1, None))):
            pending[:] = sorted(set(pending))
        self._tidied = len(pending)
        return pending

    def _runs(self) -> Iterator[Run]:
        """Every run in order, the span as one (settled first)."""
        self._settle()
        hours = self._hours
        runs = itertools.chain.from_iterable(hours[hour] for hour in sorted(hours))
        if self._span is None:
            return runs
        return heapq.merge(runs, [self._span.run], key=_first_sample)

    def _runs_by_hour(self) -> list[tuple[datetime, list[Run]]]:
        """Every hour's runs, the span decoded."""
        self._unfold()
        self._settle()
        return sorted(self._hours.items(), key=_first_item)

    # storing ---------------------------------------------------------------------------------

    def attach(self, archive: SampleArchive) -> None:
        """Read this state's archived runs from ``archive`` when they are needed."""
        if self._span is not None:
            self._span.archive = archive
        for run in self._all_hours():
            if run.archived:
                run.archive = archive

    def summarised(self) -> TimeWeightedState:
        """The state as a store keeps it once it has archived its samples (``to_archive``): each
        hour of three samples or more as one archived run, and all of them as one span once they
        are more than ``SPAN_AFTER_HOURS``. An hour of one or two samples stays raw: its first and
        last sample are all of it."""
        return self.stored()[0]

    def to_archive(self) -> dict[datetime, TimeWeightedState]:
        """Per hour, the samples ``summarised`` hides that are not archived yet: the raw runs of
        each hour of three samples or more."""
        return self.stored()[1]

    def stored(self) -> tuple[TimeWeightedState, dict[datetime, TimeWeightedState]]:
        """``summarised`` and ``to_archive`` together, the state's runs read once for both."""
        if self._stored_as_is():
            return self, {}
        loose = self._loose()
        if loose is not None:
            summary = TimeWeightedState()
            if self._stays_raw(loose):
                summary._pending = list(loose)
                return summary, {}
            if _at_most_two_an_hour(loose):
                # what the general path below makes of hours of one or two samples, without a run per hour
                span = Run(loose[0], loose[-1], len(loose), _area(loose))
                summary._span = Span(span, [_encode(sample) for sample in loose])
                return summary, {}
        kept, before, hours = self._to_store()
        archive: dict[datetime, TimeWeightedState] = {}
        summary = TimeWeightedState()
        stored: list[Run] = []
        for hour, runs in hours:
            raw = [run for run in runs if not run.archived]
            if raw and sum(run.count for run in runs) > 2:
                part = archive[hour] = TimeWeightedState()
                part._hours[hour] = raw
            if len(runs) == 1 and runs[0].count <= 2 and not runs[0].archived:
                run = runs[0]  # all of it is its first and last sample already
            else:
                first, last, count, area = _summary(runs)
                run = Run(first, last, count, area) if count > 2 else Run.of(sorted({first, last}))
            summary._hours[hour] = [run]
            stored.append(run)
        if before is None and len(stored) <= SPAN_AFTER_HOURS:
            return summary, archive
        whole = _summary(stored) if before is None else _summary([before, *_after(before, hours)])
        summary._hours = {}
        summary._span = Span(Run(*whole), [*kept, *(item for run in stored for item in _written(run))])
        return summary, archive

    def _to_store(self) -> tuple[list[Any], Run | None, list[tuple[datetime, list[Run]]]]:
        """What storing the state rewrites: the span's written hours kept as they are, the span's
        summary (None: no span kept), and the runs of every other hour. When everything new lies
        after a stored span (samples arriving in order), only the span's last hour is decoded and
        rewritten with them: storing costs the new hours, not all of them."""
        self._settle()
        span = self._span
        if span is None or any(run.first < span.run.first for run in self._all_hours()):
            return [], None, self._runs_by_hour()
        last_hour = _hour(span.run.last[0])
        cut = len(span.written)
        while cut > 0 and _hour(_time(_item_time(span.written[cut - 1]))) == last_hour:
            cut -= 1
        tail = TimeWeightedState.from_json(span.written[cut:])
        if span.archive is not None:
            tail.attach(span.archive)
        tail._settle()
        hours = dict(tail._hours)
        for hour, runs in self._hours.items():
            hours[hour] = [*hours.get(hour, []), *runs]
        return span.written[:cut], span.run, sorted(hours.items(), key=_first_item)

    @staticmethod
    def _stays_raw(samples: list[SampleKey]) -> bool:
        """Whether sorted, distinct samples are stored as they are: hours of at most two, too few for
        a span. (``_by_hour``'s hours, counted: a sample an hour or more after the one before it
        starts an hour without working out which.)"""
        if len(samples) > 2 * SPAN_AFTER_HOURS:
            return False
        hours = count = 0
        first = previous = None
        hour_end: datetime | None = None
        for sample in samples:
            time = sample[0]
            if previous is not None and first is not None and time - previous < _HOUR:
                if hour_end is None:
                    hour_end = _hour(first) + _HOUR
                if time < hour_end:
                    count += 1
                    if count > 2:
                        return False
                    previous = time
                    continue
            hours += 1
            if hours > SPAN_AFTER_HOURS:
                return False
            first, previous, hour_end, count = time, time, None, 1
        return True

    def _stored_as_is(self) -> bool:
        """Whether the state is a span read from a store and nothing since: summarised already."""
        return self._span is not None and not self._hours and not self._pending

    def to_json(self) -> Any:
        """Samples as [time, id, value]; a run of three samples or more as [first, last, count,
        area, times, ids, values], or [first, last, count, area] when its samples are archived; a
        span as {"span": its summary, "runs": its hours}."""
        pending = self._pending
        if len(pending) == 1 and not self._hours and self._span is None:
            return [_encode(pending[0])]  # a partial's usual state: one sample
        loose = self._loose()
        if loose is not None:
            return _written_samples(loose)
        written: list[Any] = []
        for run in self._runs():
            if self._span is not None and run is self._span.run:
                written.append({"span": _summary_json(run), "runs": self._span.written})
            else:
                written.extend(_written(run))
        return written

    @classmethod
    def from_json(cls, data: Any) -> TimeWeightedState:
        state = cls()
        for item in data:
            if type(item) is dict:
                summary = item["span"]
                run = Run(_decode(summary[0]), _decode(summary[1]), int(summary[2]), Decimal(summary[3]))
                state._span = Span(run, item["runs"])
            elif type(item[0]) is str:
                state._pending.append(_decode(item))
            else:
                columns = (item[4], item[5], item[6]) if len(item) > 4 else None
                run = Run(_decode(item[0]), _decode(item[1]), int(item[2]), Decimal(item[3]), encoded=columns)
                state._hours.setdefault(_hour(run.first[0]), []).append(run)
        return state

    def merge_json(self, data: Any) -> None:
        if not self._hours and self._span is None:  # samples only join the pending ones: ``merge``
            pending = self._pending
            mark = len(pending)
            for item in data:
                if type(item) is not list or type(item[0]) is not str:  # a run or a span
                    del pending[mark:]
                    break
                time = _time(text := item[0])  # ``_decode``, inline: a rollup reads every sample
                pending.append((time, item[1], Decimal(item[2])))
                learn(time, text)  # a rollup writes it again
            else:
                return
        self.merge(TimeWeightedState.from_json(data))

    # placing added samples -------------------------------------------------------------------

    def _settle(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        self._tidied = 0
        pending.sort()  # about linear: samples mostly arrive in order
        hours = self._hours
        for hour, samples in _by_hour(pending):
            run = Run.of(samples)
            if self._span is None and hour not in hours:
                hours[hour] = [run]
            else:
                self._place(hour, [run])


def _hold(
    samples: list[SampleKey],
    start: datetime,
    end: datetime,
    total: Decimal,
    in_force: Decimal | None,
    since: datetime,
) -> tuple[Decimal, Decimal | None, datetime]:
    """Add what sorted samples hold within [start, end) to ``total``, the value ``in_force`` held
    since ``since``; return the total, the value in force after them and since when."""
    add, multiply = _EXACT.add, _EXACT.multiply
    for time, _, value in samples:
        if time >= end:
            break
        if time >= start:
            if in_force is not None:
                total = add(total, multiply(in_force, (time - since) // _MICROSECOND))  # _weight, inline
            since = time
        in_force = value
    return total, in_force, since


def _merged(runs: list[Run]) -> list[Run]:
    """Runs of one hour as disjoint, sorted runs: a run that overlaps another is united with it
    (reading it from the archive if it is archived); raw runs next to each other are joined."""
    runs.sort(key=_first_sample)
    merged: list[Run] = []
    for run in runs:
        if merged:
            before = merged[-1]
            if run.first <= before.last:
                merged[-1] = Run.of(sorted(set(before.samples()) | set(run.samples())))
                continue
            if not before.archived and not run.archived:
                merged[-1] = _joined(before, run)
                continue
        merged.append(run)
    return merged


def _joined(before: Run, after: Run) -> Run:
    """Two raw runs, the second wholly after the first, as one."""
    area = _EXACT.add(_EXACT.add(before.area, after.area), _gap(before, after))
    count = before.count + after.count
    if before.encoded is not None and after.encoded is not None:
        (times, ids, values), (more_times, more_ids, more_values) = before.encoded, after.encoded
        columns = (times + more_times, ids + more_ids, values + more_values)
        return Run(before.first, after.last, count, area, encoded=columns)
    return Run(before.first, after.last, count, area, raw=before.samples() + after.samples())


def _summary(runs: list[Run]) -> tuple[SampleKey, SampleKey, int, Decimal]:
    """First and last sample, count and area of disjoint, sorted runs."""
    area = runs[0].area
    for before, after in itertools.pairwise(runs):
        area = _EXACT.add(_EXACT.add(area, after.area), _gap(before, after))
    return runs[0].first, runs[-1].last, sum(run.count for run in runs), area


def _after(whole: Run, hours: list[tuple[datetime, list[Run]]]) -> list[Run]:
    """The runs after a span's summary."""
    return [run for _, runs in hours for run in runs if run.first > whole.last]


def _item_time(item: Any) -> str:
    """The time of a written sample, or of a written run's first sample."""
    return str(item[0] if type(item[0]) is str else item[0][0])


def _overlap(run: Run, other: Run) -> bool:
    return not (run.last < other.first or other.last < run.first)


def _inside(run: Run, instant: datetime) -> bool:
    """Whether the instant falls after the run's first sample and not after its last."""
    return run.first[0] < instant <= run.last[0]


def _written(run: Run) -> list[Any]:
    """A run as JSON items: its samples when it has one or two, else itself."""
    if run.archived:
        return [_summary_json(run)]
    if run.count <= 2:
        if run.encoded is None and run.raw is not None:
            return [_encode(sample) for sample in run.raw]
        return [list(sample) for sample in zip(*run.encode(), strict=True)]
    return [[*_summary_json(run), *run.encode()]]


def _by_hour(samples: list[SampleKey]) -> list[tuple[datetime, list[SampleKey]]]:
    """Sorted samples, repeats dropped, hour by hour."""
    by_hour: list[tuple[datetime, list[SampleKey]]] = []
    previous: SampleKey | None = None
    hour_end: datetime | None = None
    hour: list[SampleKey] = []
    for sample in samples:
        if sample == previous:
            continue
        previous = sample
        if hour_end is None or sample[0] >= hour_end:
            start = _hour(sample[0])
            hour_end, hour = start + _HOUR, [sample]
            by_hour.append((start, hour))
        else:
            hour.append(sample)
    return by_hour


def _at_most_two_an_hour(samples: list[SampleKey]) -> bool:
    """Whether no hour holds three of these sorted samples."""
    for first, third in zip(samples, itertools.islice(samples, 2, None), strict=False):
        if third[0] - first[0] < _HOUR and _hour(third[0]) == _hour(first[0]):
            return False
    return True


def _written_samples(samples: list[SampleKey]) -> list[Any]:
    """Sorted, distinct samples as JSON items, hour by hour (as their runs would be written)."""
    if len(samples) <= 2 or _at_most_two_an_hour(samples):
        return [_encode(sample) for sample in samples]  # hours of at most two samples, each written
    written: list[Any] = []
    for _, hour in _by_hour(samples):
        written.extend(_written(Run.of(hour)) if len(hour) > 2 else [_encode(sample) for sample in hour])
    return written


def _summary_json(run: Run) -> list[Any]:
    return [_encode(run.first), _encode(run.last), run.count, str(run.area)]


def _gap(before: Run, after: Run) -> Decimal:
    return _weight(before.last[2], after.first[0] - before.last[0])


def _area(samples: list[SampleKey]) -> Decimal:
    total = Decimal(0)
    held_since, _, value = samples[0]
    for time, _, next_value in itertools.islice(samples, 1, None):
        total = _EXACT.add(total, _weight(value, time - held_since))
        held_since, value = time, next_value
    return total


def _hours(weight: Decimal) -> Fraction:
    """Value × microseconds as value × hours: one Fraction made from the Decimal's integer ratio."""
    numerator, denominator = weight.as_integer_ratio()
    return Fraction(numerator, denominator * _MICROSECONDS_PER_HOUR)


def _weight(value: Decimal, held: timedelta) -> Decimal:
    """value × microseconds held, exactly."""
    weight: Decimal = _EXACT.multiply(value, held // _MICROSECOND)
    return weight


def _hour(time: datetime) -> datetime:
    return time.replace(minute=0, second=0, microsecond=0)


def _first_sample(run: Run) -> SampleKey:
    return run.first


def _first_item(item: tuple[datetime, list[Run]]) -> datetime:
    return item[0]


def _encode(sample: SampleKey) -> list[str]:
    return [spelled(sample[0]), sample[1], str(sample[2])]


def _decode(data: list[str]) -> SampleKey:
    return (_time(data[0]), data[1], Decimal(data[2]))


_time = datetime.fromisoformat


def _text(sample: SampleKey) -> str:
    return f"{sample[0].isoformat()} (id {sample[1]!r})"
