"""Reading partial states back: a period's usage is the merge of its partials."""

from __future__ import annotations

from meterline.catalog import Catalog
from meterline.periods import Period
from meterline.ports import Item, Store
from meterline.records import BUCKETS, unpack_book
from meterline.topology import AGGREGATES_TABLE
from meterline.usage import UsageBook

from .aggregate import partial_pk


def billed_in(item: Item) -> Period:
    return Period.parse(str(item["sk"]).split("|", 1)[0])


def partials(store: Store, period: Period, buckets: range = range(BUCKETS)) -> list[Item]:
    return [
        item for bucket in buckets for item in store.query(AGGREGATES_TABLE.name, partial_pk(period, bucket))
    ]


def merge(catalog: Catalog, items: list[Item]) -> UsageBook:
    book = UsageBook()
    for item in items:
        book.merge(unpack_book(catalog, bytes(item["book"])))  # type: ignore[arg-type]
    return book
