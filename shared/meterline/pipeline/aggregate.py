"""Aggregate: fold newly accepted usage into partial states, exactly once per stream record.

A batch of usage-ledger stream records (one shard, ascending sequence numbers) becomes one
partial state per (period, tenant bucket), written in ONE transaction together with a batch
marker: created under the batch's first sequence number, holding its last. Lambda retries a
failed stream batch from the same first record, so a retry finds the marker and skips what it
covers (a longer retry goes on after it); a crash before the commit leaves nothing behind. The
marker needs no shard id, which Lambda's stream events do not carry.

Usage for a period that was already closed (its fence exists) is billed in the first open
period after it: the partial is stored with the usage's own period and tagged with the period
that bills it, and the transaction checks that period's fence is still absent — so a close and
an aggregation can never both claim the same usage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from meterline.catalog import Catalog
from meterline.periods import Period
from meterline.ports import (
    MAX_TRANSACTION_WRITES,
    ConditionFailedError,
    Expect,
    Item,
    Put,
    PutNew,
    Store,
    Write,
)
from meterline.records import AcceptedUsage, bucket_of, pack_book
from meterline.topology import AGGREGATES_TABLE
from meterline.usage import UsageBook

TABLE = AGGREGATES_TABLE.name
MAX_PARTIAL_BYTES = 350_000
MAX_TRANSACTION_BYTES = 3_500_000
"""Below the 4 MB a DynamoDB transaction (and an Azure Tables batch) may carry in all."""
"""Below DynamoDB's 400 KB item limit, with room for keys and attributes."""


@dataclass(frozen=True, slots=True)
class StreamRecord:
    sequence: str
    """A decimal string, increasing within the shard."""
    usage: AcceptedUsage


def _sequence_key(sequence: str) -> str:
    return f"{int(sequence):040d}"


def fence_key(period: Period) -> tuple[str, str]:
    return "fence", str(period)


def partial_pk(period: Period, bucket: int) -> str:
    return f"partial|{period}|{bucket:02d}"


class Aggregator:
    def __init__(self, catalog: Catalog, store: Store) -> None:
        self.catalog = catalog
        self.store = store
        self.indexed: set[Period] = set()

    def run(self, records: Sequence[StreamRecord], attempts: int = 8) -> int:
        """Apply the records no batch marker covers yet; return how many were applied."""
        applied = 0
        remaining = list(records)
        conflicts = 0
        while remaining:
            marker = self.store.get(TABLE, "batch", _sequence_key(remaining[0].sequence))
            if marker is not None:
                last = int(str(marker["last"]))
                remaining = [record for record in remaining if int(record.sequence) > last]
                continue
            try:
                count = self.commit(remaining)
            except ConditionFailedError:
                conflicts += 1  # a fence appeared, or a twin invocation committed first: plan again
                if conflicts >= attempts:
                    raise
                continue
            applied += count
            remaining = remaining[count:]
        return applied

    def commit(self, records: Sequence[StreamRecord]) -> int:
        """Commit the longest prefix of records that fits one transaction; return its length."""
        count = len(records)
        while True:
            writes = self.plan(records[:count])
            if writes is not None:
                self.store.transact(writes)
                return count
            if count == 1:
                raise ValueError(f"record {records[0].sequence} does not fit a transaction")
            count //= 2

    def plan(self, records: Sequence[StreamRecord]) -> list[Write] | None:
        billing_period = self.billing_periods({r.usage.period for r in records})
        books: dict[tuple[Period, int, Period], UsageBook] = {}
        for record in records:
            usage = record.usage
            period = usage.period
            slot = (period, bucket_of(usage.tenant), billing_period[period])
            book = books.get(slot)
            if book is None:
                book = books[slot] = UsageBook()
            usage.record_into(book, self.catalog, period)
        self.index_periods(billing_period.values())
        first = records[0].sequence
        writes: list[Write] = []
        total_bytes = 0
        for (period, bucket, billed_in), book in sorted(books.items(), key=lambda kv: kv[0]):
            blob = pack_book(book)
            total_bytes += len(blob)
            if len(blob) > MAX_PARTIAL_BYTES or total_bytes > MAX_TRANSACTION_BYTES:
                return None
            writes.append(
                PutNew(
                    TABLE,
                    {
                        "pk": partial_pk(period, bucket),
                        "sk": f"{billed_in}|{_sequence_key(first)}",
                        "book": blob,
                        "tenants": len({tenant for tenant, _ in book.states}),
                    },
                )
            )
        for period in sorted(set(billing_period.values())):
            writes.append(Expect(TABLE, *fence_key(period), "closed_at", None))
        for period, billed_in in sorted(billing_period.items()):
            if billed_in != period:
                writes.append(Put(TABLE, {"pk": f"late|{billed_in}", "sk": str(period)}))
        marker: Item = {"pk": "batch", "sk": _sequence_key(first), "last": records[-1].sequence}
        writes.append(PutNew(TABLE, marker))
        return writes if len(writes) <= MAX_TRANSACTION_WRITES else None

    def index_periods(self, periods: Iterable[Period]) -> None:
        """Note which periods have usage (for the closer), outside the transaction: a shared
        item in every transaction would make concurrent shards conflict."""
        for period in set(periods) - self.indexed:
            self.store.put(TABLE, {"pk": "periods", "sk": str(period)})
            self.indexed.add(period)

    def billing_periods(self, periods: set[Period]) -> dict[Period, Period]:
        """Each usage period, mapped to the first period from it on whose fence is absent."""
        result: dict[Period, Period] = {}
        closed: dict[Period, bool] = {}
        for period in periods:
            candidate = period
            while True:
                if candidate not in closed:
                    closed[candidate] = self.store.get(TABLE, *fence_key(candidate)) is not None
                if not closed[candidate]:
                    break
                candidate = candidate.next()
            result[period] = candidate
        return result
