"""Packed usage books read back as the states they were packed from."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from meterline.periods import Period
from meterline.records import pack_book, unpack_book
from meterline.usage import UsageBook, fold
from tests.pipeline.test_cell import CATALOG


def test_a_book_grouped_by_a_fractional_number_unpacks_to_the_same_quantities() -> None:
    # GIVEN a book whose ingress is grouped by cluster 1.5 (a Decimal group value) and cluster "a"
    period = Period(2026, 10)
    meter = CATALOG.meters["ingress_gb"]
    book = UsageBook()
    states = book.states_of("org-1", period)
    time = datetime(2026, 10, 2, tzinfo=UTC)
    fold(states, [(("ingress_gb", (Decimal("1.5"),)), meter, Decimal(3 * 10**9))], time, "e1")
    fold(states, [(("ingress_gb", ("a",)), meter, Decimal(10**9))], time, "e2")
    # WHEN it is packed and unpacked
    unpacked = unpack_book(CATALOG, pack_book(book))
    # THEN the group keeps its Decimal value and every quantity is the packed one
    assert unpacked.quantities(CATALOG, "org-1", period) == book.quantities(CATALOG, "org-1", period)
    assert ("ingress_gb", (Decimal("1.5"),)) in unpacked.states_of("org-1", period)
