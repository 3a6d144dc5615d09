"""A closer a month behind (issue #12): one stalled between what it read and what it writes can
never move the books back, and a reader never sees the end-of-period values half written."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from meterline.adapters.memory import MemoryStore
from meterline.periods import Period
from meterline.pipeline import ledger as ledger_module
from meterline.pipeline.invoices import amend_window, set_amend_window
from meterline.pipeline.ledger import PeriodLedger, closing_prefix, pack_closing, period_pk
from meterline.ports import Item
from meterline.records import bucket_of
from meterline.topology import AGGREGATES_TABLE, INVOICES_TABLE

from .test_amendments import CATALOG

OCTOBER, NOVEMBER, DECEMBER = Period(2026, 10), Period(2026, 11), Period(2026, 12)
CKU = ("cku_hours", ())


class StallingStore(MemoryStore):
    """A memory store on which the first read matching ``reads`` stalls its caller: ``meanwhile``
    runs (another closer getting ahead) before the read's result is handed back."""

    def __init__(self) -> None:
        super().__init__([AGGREGATES_TABLE.name, INVOICES_TABLE.name])
        self.reads: Callable[[str, str, str], bool] = lambda table, pk, sk: False
        self.meanwhile: Callable[[], None] = lambda: None

    def stall_after(self, reads: Callable[[str, str, str], bool], meanwhile: Callable[[], None]) -> None:
        self.reads, self.meanwhile = reads, meanwhile

    def _read(self, table: str, pk: str, sk: str) -> None:
        if self.reads(table, pk, sk):
            self.reads = lambda table, pk, sk: False
            self.meanwhile()

    def get(self, table: str, pk: str, sk: str) -> Item | None:
        item = super().get(table, pk, sk)
        self._read(table, pk, sk)
        return item

    def query(self, table: str, pk: str, sk_prefix: str = "") -> list[Item]:
        items = super().query(table, pk, sk_prefix)
        self._read(table, pk, sk_prefix)
        return items


def in_ledger_of(period: Period) -> Callable[[str, str, str], bool]:
    return lambda table, pk, sk: table == AGGREGATES_TABLE.name and pk == period_pk(period)


def cku(value: str) -> dict[str, dict[tuple[str, tuple[()]], Decimal]]:
    return {"org-a": {CKU: Decimal(value)}}


def test_a_close_stalled_since_it_read_octobers_end_values_cannot_put_back_older_ones() -> None:
    # GIVEN November's close, carrying late October usage, about to store October's end values
    # (2 CKU) and stalled right after its first read of October's ledger
    store = StallingStore()
    october = PeriodLedger(CATALOG, store, OCTOBER)
    october.update_closing(cku("1"), by=OCTOBER)
    # WHEN meanwhile December's close carries later usage and stores 4 CKU, then November's resumes
    store.stall_after(
        in_ledger_of(OCTOBER),
        lambda: PeriodLedger(CATALOG, store, OCTOBER).update_closing(cku("4"), by=DECEMBER),
    )
    october.update_closing(cku("2"), by=NOVEMBER)
    # THEN October ends with what the latest close knew
    assert october.closing() == cku("4")


def test_a_twin_close_of_november_a_month_behind_does_not_overwrite_what_december_carried() -> None:
    # GIVEN November's end values (3 CKU) updated by December's close with late November usage
    store = StallingStore()
    november = PeriodLedger(CATALOG, store, NOVEMBER)
    november.update_closing(cku("3"), by=DECEMBER)
    # WHEN a twin closer of November, stalled a month, stores its own end values (2 CKU)
    november.write_closing(cku("2"))
    # THEN November still ends with December's
    assert november.closing() == cku("3")


def test_a_close_stalled_since_it_read_the_amendment_window_cannot_move_it_back() -> None:
    # GIVEN November's close about to move the window to October, stalled right after reading it
    store = StallingStore()
    store.stall_after(
        lambda table, pk, sk: table == INVOICES_TABLE.name and pk == "window",
        lambda: set_amend_window(store, NOVEMBER),  # WHEN meanwhile December's close moves it on
    )
    set_amend_window(store, OCTOBER)
    # THEN the window stays where December's close left it
    assert amend_window(store) == NOVEMBER


class WatchedStore(MemoryStore):
    """A memory store that reads October's end values after every write to October's ledger."""

    def __init__(self) -> None:
        super().__init__([AGGREGATES_TABLE.name, INVOICES_TABLE.name])
        self.seen: list[object] = []
        self.watching = False

    def put(self, table: str, item: Item) -> None:
        super().put(table, item)
        if self.watching and item["pk"] == period_pk(OCTOBER):
            try:
                self.seen.append(PeriodLedger(CATALOG, self, OCTOBER).closing())
            except Exception as error:  # a torn read is what this looks for
                self.seen.append(error)


def test_a_reader_sees_octobers_end_values_before_or_after_an_update_never_half_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN October's end values for 300 tenants, each bucket's cut into many small items
    monkeypatch.setattr(ledger_module, "MAX_CHUNK_BYTES", 64)
    store = WatchedStore()
    october = PeriodLedger(CATALOG, store, OCTOBER)
    before = {f"org-{n}": {CKU: Decimal(n)} for n in range(300)}
    october.update_closing(before, by=OCTOBER)
    # WHEN a later close rewrites them all while a reader reads after every item it writes
    after = {tenant: {CKU: value[CKU] + 1} for tenant, value in before.items()}
    store.watching = True
    october.update_closing(after, by=NOVEMBER)
    # THEN every read saw all the old values or all the new ones
    assert store.seen
    assert [seen for seen in store.seen if seen not in (before, after)] == []
    assert october.closing() == after


def test_end_values_stored_before_versions_are_read_and_kept_by_the_first_update() -> None:
    # GIVEN October's end values for two tenants of one bucket as a close stored them before versions
    store = StallingStore()
    october = PeriodLedger(CATALOG, store, OCTOBER)
    tenants = [t for t in (f"org-{n}" for n in range(100)) if bucket_of(t) == bucket_of("org-a")][:2]
    packed = pack_closing({tenant: {CKU: Decimal(5)} for tenant in tenants})
    item: Item = {"pk": period_pk(OCTOBER), "sk": f"{closing_prefix(bucket_of('org-a'))}0000", "book": packed}
    store.put(AGGREGATES_TABLE.name, {**item, "chunks": 1})
    stored = october.closing()
    # WHEN November's close updates one of them
    october.update_closing({tenants[0]: {CKU: Decimal(6)}}, by=NOVEMBER)
    # THEN both were read, and the other keeps its value
    assert stored == {tenant: {CKU: Decimal(5)} for tenant in tenants}
    assert october.closing() == {tenants[0]: {CKU: Decimal(6)}, tenants[1]: {CKU: Decimal(5)}}
