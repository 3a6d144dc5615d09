"""Usage books cut at subscription boundaries: packed and read back whole, split exactly, and
refused when a boundary cuts usage that was kept together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.billing import bill_period
from meterline.metering import Measurement
from meterline.periods import Period
from meterline.records import pack_book, unpack_book
from meterline.splits import UsageSplitError, _split, split_usage
from meterline.terms import cutter
from meterline.usage import UsageBook
from tests.pipeline.test_cell import CATALOG_V2


def test_a_book_cut_at_a_subscription_boundary_unpacks_to_the_same_segments() -> None:
    # GIVEN org-1 changing plan on 12 November: its November is kept in two segments
    november = Period(2026, 11)
    book = UsageBook(cutter(CATALOG_V2))
    meter = CATALOG_V2.meters["ingress_gb"]
    for day, event_id in ((3, "a"), (20, "b")):
        time = datetime(2026, 11, day, tzinfo=UTC)
        book.record("org-1", november, [Measurement(meter, ("x",), Decimal(10**9))], time, event_id)

    # WHEN it is packed and unpacked
    unpacked = unpack_book(CATALOG_V2, pack_book(book))

    # THEN the segments are the same, and each holds its own day's usage
    assert sorted(unpacked.segments("org-1", november)) == [(1, 12), (12, 31)]
    split = split_usage(CATALOG_V2, november, unpacked.segments("org-1", november), [(1, 12), (12, 31)], {})
    assert split.parts == [{("ingress_gb", ("x",)): 1}, {("ingress_gb", ("x",)): 1}]


def test_usage_kept_together_that_a_later_boundary_cuts_is_an_error_naming_the_tenant() -> None:
    # GIVEN org-1's November kept whole (aggregated before its plan change was in the catalog)
    november = Period(2026, 11)
    book = UsageBook()
    meter = CATALOG_V2.meters["ingress_gb"]
    time = datetime(2026, 11, 3, tzinfo=UTC)
    book.record("org-1", november, [Measurement(meter, ("x",), Decimal(1))], time, "a")

    # WHEN it is billed under the catalog that ends a subscription on 12 November
    # THEN it is refused, not guessed
    with pytest.raises(UsageSplitError, match=r"org-1: usage of days 1-30 of 2026-11"):
        bill_period(CATALOG_V2, book, november, {})


def test_a_range_gets_only_the_meters_asked_for_and_the_days_between_get_every_meter() -> None:
    # GIVEN org-1 changing plan on 12 November, with bytes and a held CKU value on both sides
    november = Period(2026, 11)
    book = UsageBook(cutter(CATALOG_V2))
    gb, cku = CATALOG_V2.meters["ingress_gb"], CATALOG_V2.meters["cku_hours"]
    for day, event_id in ((3, "a"), (20, "b")):
        time = datetime(2026, 11, day, tzinfo=UTC)
        book.record("org-1", november, [Measurement(gb, ("x",), Decimal(10**9))], time, event_id)
        book.record("org-1", november, [Measurement(cku, (), Decimal(2))], time, event_id + "c")
    segments = book.segments("org-1", november)

    # WHEN it is split into its first range and the rest, the range asking for ingress_gb only
    split = split_usage(CATALOG_V2, november, segments, [(1, 12)], {}, priced=[{"ingress_gb"}])

    # THEN the range has no CKU hours, the rest has both, and the closing value is still carried
    assert split.parts == [{("ingress_gb", ("x",)): 1}]
    assert split.rest == {("ingress_gb", ("x",)): 1, ("cku_hours", ()): 2 * 24 * 19}
    assert split.closing == {("cku_hours", ()): Decimal(2)}


_METERS = ("ingress_gb", "cku_hours", "peak_partitions")
_samples = st.lists(
    st.tuples(
        st.sampled_from(_METERS),
        st.sampled_from([("x",), ("y",)]),
        st.integers(min_value=1, max_value=30),
        st.integers(min_value=0, max_value=23),
        st.decimals(min_value=0, max_value=1000, places=2),
    ),
    max_size=12,
)
_opening = st.dictionaries(
    st.sampled_from([("cku_hours", ()), ("cku_hours", ("x",)), ("peak_partitions", ()), ("gone", ())]),
    st.decimals(min_value=0, max_value=9, places=1),
    max_size=3,
)


@given(
    samples=_samples,
    opening=_opening,
    until_hours=st.none() | st.integers(min_value=-1, max_value=31 * 24),
    priced=st.none() | st.sets(st.sampled_from(_METERS)),
)
@settings(max_examples=150, deadline=None)
def test_one_term_all_month_splits_as_any_ranges_do(
    samples: list[tuple[str, tuple[str, ...], int, int, Decimal]],
    opening: dict[tuple[str, tuple[str, ...]], Decimal],
    until_hours: int | None,
    priced: set[str] | None,
) -> None:
    # GIVEN a tenant's November kept whole (one segment, or none), values carried in, maybe a draft
    november = Period(2026, 11)
    book = UsageBook()
    for number, (meter, group, day, hour, value) in enumerate(samples):
        time = datetime(2026, 11, day, hour, tzinfo=UTC)
        measured = Measurement(CATALOG_V2.meters[meter], group if meter == "ingress_gb" else (), value)
        book.record("org-1", november, [measured], time, str(number))  # only ingress is grouped
    segments = book.segments("org-1", november)
    until = None if until_hours is None else datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=until_hours)
    wanted = None if priced is None else [priced]

    # WHEN it is split into one range, the whole month: the short way, and the general one
    fast = split_usage(CATALOG_V2, november, segments, [(1, 31)], opening, until, wanted)
    general = _split(CATALOG_V2, november, segments, [(1, 31)], opening, until, wanted)

    # THEN both give the same quantities and closing values, in the same order
    assert [list(part.items()) for part in fast.parts] == [list(part.items()) for part in general.parts]
    assert list(fast.rest.items()) == list(general.rest.items())
    assert list(fast.closing.items()) == list(general.closing.items())
