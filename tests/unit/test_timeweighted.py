"""The time-weighted state: held() and closing() by hand, and its stored form (hour runs, a span,
archived samples) giving exactly what its samples give, whatever the order, repeats and splits."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline import timeweighted
from meterline.periods import Period
from meterline.timeweighted import ArchiveError, SampleKey, TimeWeightedState

NOVEMBER = Period(2026, 11)
NOV = NOVEMBER.start
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def state_of(*samples: tuple[datetime, str, str | int]) -> TimeWeightedState:
    state = TimeWeightedState()
    for time, event_id, value in samples:
        state.add(Decimal(value), time, event_id)
    return state


class Archive:
    """What a ledger keeps of a stored state's samples, per hour; counts the hours read back."""

    def __init__(self) -> None:
        self.hours: dict[datetime, set[SampleKey]] = {}
        self.reads = 0

    def keep(self, state: TimeWeightedState) -> None:
        for hour, part in state.to_archive().items():
            self.hours.setdefault(hour, set()).update(part.samples())

    def samples(self, hour: datetime) -> Iterable[SampleKey]:
        self.reads += 1
        return self.hours.get(hour, set())


def stored(state: TimeWeightedState, archive: Archive, span_after: int | None = None) -> TimeWeightedState:
    """The state as a rollup keeps it: samples archived, summary written as JSON text and read back
    (``span_after``: as one span once it has more hour runs than that)."""
    archive.keep(state)
    with pytest.MonkeyPatch.context() as patch:
        if span_after is not None:
            patch.setattr(timeweighted, "SPAN_AFTER_HOURS", span_after)
        summary = state.summarised()
    again = TimeWeightedState.from_json(json.loads(json.dumps(summary.to_json())))
    again.attach(archive)
    return again


# --- held() and closing(), by hand --------------------------------------------------------------------


def test_an_opening_value_holds_until_the_first_sample() -> None:
    # GIVEN 4 from 10 Nov 00:00, and 2 carried over from October
    state = state_of((NOV + 9 * DAY, "a", 4))
    # THEN 2 × 216 h (1-10 Nov) + 4 × 504 h (10 Nov - 1 Dec) = 432 + 2016
    assert state.held(NOVEMBER.start, NOVEMBER.end, opening=Decimal(2)) == 2448
    # AND without an opening nothing is held before the sample: quantity() is held() without one
    assert state.held(NOVEMBER.start, NOVEMBER.end) == state.quantity(NOVEMBER) == 2016


def test_a_sample_exactly_at_the_start_replaces_the_opening_value() -> None:
    state = state_of((NOV, "a", 3))
    # THEN the opening 7 holds for no time at all: 3 × 720 h
    assert state.held(NOVEMBER.start, NOVEMBER.end, opening=Decimal(7)) == 2160


def test_the_last_sample_before_the_start_is_in_force_at_the_start_not_the_opening() -> None:
    # GIVEN 5 on 20 Oct, 6 on 31 Oct 12:00 and 1 on 15 Nov
    state = state_of((NOV - 12 * DAY, "a", 5), (NOV - 12 * HOUR, "b", 6), (NOV + 14 * DAY, "c", 1))
    # THEN November: 6 × 336 h (1-15 Nov) + 1 × 384 h (15 Nov - 1 Dec) = 2016 + 384, opening or not
    assert state.held(NOVEMBER.start, NOVEMBER.end) == 2400
    assert state.held(NOVEMBER.start, NOVEMBER.end, opening=Decimal(100)) == 2400


def test_spend_to_date_holds_the_last_sample_until_now() -> None:
    # GIVEN 2 from 1 Nov, 5 from 3 Nov 00:00, and 9 from 5 Nov (after now)
    state = state_of((NOV, "a", 2), (NOV + 2 * DAY, "b", 5), (NOV + 4 * DAY, "c", 9))
    now = NOV + 2 * DAY + 12 * HOUR
    # THEN until 3 Nov 12:00: 2 × 48 h + 5 × 12 h = 96 + 60; the later sample does not count
    assert state.held(NOVEMBER.start, now) == 156
    # AND an end at or before the start holds nothing
    assert state.held(now, now) == 0 and state.held(now, NOVEMBER.start) == 0


def test_held_counts_fractions_of_an_hour_exactly() -> None:
    # GIVEN 1.5 from 00:00:00 to 00:00:01, then 0
    state = state_of((NOV, "a", "1.5"), (NOV + timedelta(seconds=1), "b", 0))
    assert state.quantity(NOVEMBER) == Fraction(15, 10) / 3600


def test_closing_is_the_value_of_the_last_sample_strictly_before_the_instant() -> None:
    state = state_of((NOV, "a", 2), (NOV + DAY, "b", 5), (NOV + DAY, "c", 8))
    # THEN at 1 Dec: the last sample, 8 (same time as 5, greater id)
    assert state.closing(NOVEMBER.end) == 8
    # AND at exactly 2 Nov 00:00 the samples of that instant are not before it: 2
    assert state.closing(NOV + DAY) == 2
    # AND before the first sample there is nothing to carry
    assert state.closing(NOV) is None
    assert TimeWeightedState().closing(NOVEMBER.end) is None


def test_same_time_and_id_with_other_values_are_two_samples_ordered_by_value() -> None:
    # GIVEN two sources' samples with one time and id: 3 holds for no time, then 7 until the end
    state = state_of((NOV, "a", 7), (NOV, "a", 3))
    assert state.quantity(NOVEMBER) == 7 * 720


# --- stored states: hour runs, a span, archived samples ---------------------------------------------


def per_second(start: datetime, count: int, first_id: int = 0) -> list[tuple[datetime, str, int]]:
    return [(start + timedelta(seconds=n), f"s{first_id + n:07d}", 1 + (n // 600) % 3) for n in range(count)]


def test_a_stored_state_keeps_one_run_per_hour_and_samples_in_order_read_no_archive() -> None:
    # GIVEN three hours of per-second samples, stored
    archive = Archive()
    state = stored(state_of(*per_second(NOV, 3 * 3600)), archive)
    # THEN its stored form is three archived hour runs, not 10,800 samples
    assert [run[2] for run in state.to_json()] == [3600, 3600, 3600]
    # WHEN the next hour arrives in order, and the total is read
    state.merge(state_of(*per_second(NOV + 3 * HOUR, 3600, first_id=3 * 3600)))
    everything = state_of(*per_second(NOV, 4 * 3600))
    # THEN it is exactly the total of all the samples, and no archived sample was read
    assert state.quantity(NOVEMBER) == everything.quantity(NOVEMBER)
    assert state.closing(NOVEMBER.end) == everything.closing(NOVEMBER.end)
    assert archive.reads == 0


def test_a_stored_state_of_more_than_a_day_is_one_span_that_in_order_samples_leave_folded() -> None:
    # GIVEN 30 hours of a sample a minute, stored
    archive = Archive()
    samples = [(NOV + n * timedelta(minutes=1), f"m{n:05d}", n % 7) for n in range(30 * 60)]
    state = stored(state_of(*samples), archive)
    (span,) = state.to_json()
    assert span["span"][2] == 30 * 60 and len(span["runs"]) == 30
    # WHEN a later sample arrives and the period's total and closing value are read
    later = (NOV + 31 * HOUR, "later", 4)
    state.merge(state_of(later))
    # THEN they are exact, read from the span's summary alone: its hours were neither decoded nor read
    assert state.quantity(NOVEMBER) == state_of(*samples, later).quantity(NOVEMBER)
    # (just before 31:00 the last stored sample is in force: minute 1799, value 1799 % 7 = 0)
    assert state.closing(NOVEMBER.end) == 4 and state.closing(NOV + 31 * HOUR) == 0
    assert state.to_json()[0] == span and archive.reads == 0


def test_a_sample_inside_an_archived_hour_reads_that_hour_back_once() -> None:
    archive = Archive()
    state = stored(state_of(*per_second(NOV, 2 * 3600)), archive)
    # WHEN a late sample lands between two archived samples of the first hour (00:10:00.5)
    late = (NOV + timedelta(minutes=10, microseconds=500_000), "late", 9)
    state.merge(state_of(late))
    # THEN the total is that of every sample, from one hour read back
    assert state.quantity(NOVEMBER) == state_of(*per_second(NOV, 2 * 3600), late).quantity(NOVEMBER)
    assert archive.reads == 1


def test_a_repeated_archived_sample_counts_once() -> None:
    archive = Archive()
    samples = per_second(NOV, 3600)
    state = stored(state_of(*samples), archive)
    state.merge(state_of(samples[1800]))
    assert state.quantity(NOVEMBER) == state_of(*samples).quantity(NOVEMBER)


def test_a_sample_in_an_hour_without_samples_needs_no_archive() -> None:
    # GIVEN hours 00 and 05 stored, and a sample at 02:30 (between them, inside the span)
    archive = Archive()
    samples = [*per_second(NOV, 100), *per_second(NOV + 5 * HOUR, 100, first_id=1000)]
    state = stored(state_of(*samples), archive)
    between = (NOV + 2 * HOUR + 30 * timedelta(minutes=1), "b", 7)
    state.merge(state_of(between))
    # THEN its hours are placed exactly without reading any archived sample
    assert state.quantity(NOVEMBER) == state_of(*samples, between).quantity(NOVEMBER)
    assert archive.reads == 0


def test_an_archive_missing_a_sample_is_an_error_not_a_wrong_total() -> None:
    archive = Archive()
    state = stored(state_of(*per_second(NOV, 600)), archive)
    archive.hours[NOV].discard(next(iter(archive.hours[NOV])))
    with pytest.raises(ArchiveError, match="the archive does not hold the 600 samples from 2026-11-01T00:00"):
        state.merge(state_of((NOV + timedelta(seconds=30, microseconds=1), "late", 1)))


def test_archived_samples_without_an_archive_say_so() -> None:
    archive = Archive()
    summary = TimeWeightedState.from_json(stored(state_of(*per_second(NOV, 600)), archive).to_json())
    with pytest.raises(ArchiveError, match="are archived, and no archive is attached"):
        summary.samples()


# --- properties: the stored form gives what the samples give --------------------------------------


def reference_held(
    samples: Iterable[SampleKey], start: datetime, end: datetime, opening: Decimal | None
) -> Fraction:
    """SPEC §3 by its words, over the distinct samples."""
    ordered = sorted(set(samples))
    if end <= start:
        return Fraction(0)
    before = [value for time, _, value in ordered if time < start]
    in_force = before[-1] if before else opening
    since, total = start, Fraction(0)
    for time, _, value in ordered:
        if not start <= time < end:
            continue
        if in_force is not None:
            total += Fraction(in_force) * ((time - since) // timedelta(microseconds=1))
        in_force, since = value, time
    if in_force is not None:
        total += Fraction(in_force) * ((end - since) // timedelta(microseconds=1))
    return total / 3_600_000_000


def reference_closing(samples: Iterable[SampleKey], at: datetime) -> Decimal | None:
    before = [value for time, _, value in sorted(set(samples)) if time < at]
    return before[-1] if before else None


# Few distinct times, ids and values, so that repeats, ties and same-hour neighbours are common.
moments = st.integers(0, 4 * 3600 - 1).map(lambda seconds: NOV + timedelta(seconds=seconds) - HOUR)
sample_keys = st.tuples(
    moments, st.sampled_from(["a", "b", "c"]), st.sampled_from([Decimal(v) for v in ("0", "1", "2.5", "7")])
)
instants = st.integers(-2, 5 * 3600).map(lambda seconds: NOV - HOUR + timedelta(seconds=seconds))
openings = st.none() | st.sampled_from([Decimal(0), Decimal("3.25")])
PROPERTY = settings(max_examples=200, deadline=None)
SPAN_AFTER = st.sampled_from([0, 1, 24])
"""Stored hours as a span from the first, the second, or (as deployed) the 25th."""


@PROPERTY
@given(
    batches=st.lists(st.lists(sample_keys, max_size=12), max_size=6),
    kept=st.lists(st.booleans(), min_size=6, max_size=6),
    start=instants,
    end=instants,
    opening=openings,
    data=st.data(),
)
def test_rollups_of_batches_read_with_later_batches_give_what_the_samples_give(
    batches: list[list[SampleKey]],
    kept: list[bool],
    start: datetime,
    end: datetime,
    opening: Decimal | None,
    data: st.DataObject,
) -> None:
    # GIVEN batches of samples (repeats, ties, out of order; or, as a gauge mostly sends them, in
    # order from one batch to the next) rolled up one after another, as a ledger does: the
    # previous rollup, merged with the batch, archived and summarised again (its hours as one
    # span, or not); the batches left over (``kept`` False) are read raw beside the last rollup,
    # as rate does
    if data.draw(st.booleans(), label="in order"):
        ordered = iter(sorted(sample for batch in batches for sample in batch))
        batches = [[next(ordered) for _ in batch] for batch in batches]
    archive = Archive()
    span_after = data.draw(SPAN_AFTER)
    rollup = TimeWeightedState()
    open_batches = []
    for batch, rolled in zip(batches, kept, strict=False):
        fresh = state_of(*((t, i, str(v)) for t, i, v in batch))
        if rolled:
            rollup.merge(fresh)
            rollup = stored(rollup, archive, span_after)
        else:
            open_batches.append(fresh)
    reading = TimeWeightedState()
    for part in data.draw(st.permutations([rollup, *open_batches])):
        reading.merge(part)
    every = [sample for batch in batches for sample in batch]
    # THEN the total over any range, with or without an opening value, and the value in force at
    # any instant are those of the distinct samples
    assert reading.held(start, end, opening) == reference_held(every, start, end, opening)
    assert reading.closing(end) == reference_closing(every, end)
    assert reading.samples() == sorted(set(every))


@PROPERTY
@given(
    samples=st.lists(sample_keys, max_size=40), cuts=st.lists(st.integers(0, 40), max_size=6), data=st.data()
)
def test_a_span_rolled_up_with_samples_after_it_rewrites_only_its_last_hour_and_stays_exact(
    samples: list[SampleKey], cuts: list[int], data: st.DataObject
) -> None:
    # GIVEN samples arriving in order, in batches, each batch rolled up into a span with the last
    ordered = sorted(samples)
    bounds = [0, *sorted(cuts), len(ordered)]
    archive, rollup, seen = Archive(), TimeWeightedState(), []
    for low, high in itertools.pairwise(bounds):
        batch = ordered[low:high]
        rollup.merge(state_of(*((t, i, str(v)) for t, i, v in batch)))
        rollup = stored(rollup, archive, span_after=data.draw(st.sampled_from([0, 1])))
        seen += batch
        # THEN after every rollup the stored state is exactly that of the samples so far
        assert rollup.quantity(NOVEMBER) == reference_held(seen, NOVEMBER.start, NOVEMBER.end, None)
        assert rollup.closing(NOVEMBER.end) == reference_closing(seen, NOVEMBER.end)
    assert rollup.samples() == sorted(set(samples))


@PROPERTY
@given(samples=st.lists(sample_keys, max_size=30), data=st.data())
def test_merging_is_associative_commutative_and_idempotent_over_stored_and_raw_parts(
    samples: list[SampleKey], data: st.DataObject
) -> None:
    # GIVEN the samples split into four parts, some of them stored (each over its own archive)
    part_of = data.draw(st.lists(st.integers(0, 3), min_size=len(samples), max_size=len(samples)))
    parts = []
    for index in range(4):
        mine = [(t, i, str(v)) for (t, i, v), p in zip(samples, part_of, strict=True) if p == index]
        part = state_of(*mine)
        parts.append(stored(part, Archive(), data.draw(SPAN_AFTER)) if data.draw(st.booleans()) else part)
    # WHEN they are merged in any order and grouping, one of them twice and the left group again
    ordered = data.draw(st.permutations(parts))
    split = data.draw(st.integers(0, 4))
    left, right, whole = TimeWeightedState(), TimeWeightedState(), TimeWeightedState()
    for part in ordered[:split]:
        left.merge(part)
    for part in [*ordered[split:], data.draw(st.sampled_from(parts))]:
        right.merge(part)
    for group in (right, left, left):
        whole.merge(group)
    # THEN the result is the state of all the samples
    assert whole.quantity(NOVEMBER) == reference_held(samples, NOVEMBER.start, NOVEMBER.end, None)
    assert whole.samples() == sorted(set(samples))


@PROPERTY
@given(batches=st.lists(st.lists(sample_keys, max_size=8), min_size=1, max_size=5), end=instants)
def test_samples_added_after_a_read_are_read_with_the_others(
    batches: list[list[SampleKey]], end: datetime
) -> None:
    # GIVEN a state of raw samples, read (which sorts its samples once) between batches that add
    # more, one at a time or merged in, out of order and repeated
    state = TimeWeightedState()
    seen: list[SampleKey] = []
    for number, batch in enumerate(batches):
        if number % 2:
            state.merge(state_of(*((t, i, str(v)) for t, i, v in batch)))
        else:
            for time, event_id, value in batch:
                state.add(value, time, event_id)
        seen += batch
        # THEN every read after every batch is that of all the samples so far
        assert state.held(NOV, end) == reference_held(seen, NOV, end, None)
        assert state.closing(end) == reference_closing(seen, end)
        assert state.samples() == sorted(set(seen))
