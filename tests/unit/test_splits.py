"""Usage books cut at subscription boundaries: packed and read back whole, split exactly, and
refused when a boundary cuts usage that was kept together."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meterline.billing import bill_period
from meterline.metering import Measurement
from meterline.periods import Period
from meterline.records import pack_book, unpack_book
from meterline.splits import UsageSplitError, split_usage
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
