"""The aggregates ledger of one billing period: partial states in sealed windows, and their rollups.

Everything a billing period holds lives in ONE partition (``period|<YYYY-MM>``), so every
transaction touches one partition, which is all Azure Tables can commit atomically:

- ``partial|<window>|<first>`` — usage folded by one aggregate transaction (mergeable states,
  zlib-packed), filed under the window that was open when it committed.
- ``batch|<batch first>|<first>`` — the marker written with it: which records it applied.
- ``fence|<window>`` — the window is sealed: the aggregate transaction checks the fence of its
  window is absent, so no partial can join a window after its fence exists. Rate seals a window
  to roll it up, publish once it holds ``SEAL_AFTER_PARTIALS`` partials (its cursor moves over
  sealed windows only). Sealing the last window ``final`` closes the period: later usage of it
  is billed in the next period.
- ``rollup|<bucket>|<window>|<base>|<chunk>`` — for one tenant bucket, every partial of every
  window up to ``window`` merged (the previous rollup of the bucket, ``base``, plus the sealed
  windows after it). Its content follows from sealed, immutable partials, so two rollers of the
  same windows write the same chunks; ``base`` in the key keeps rollers from different heads apart.
- ``archive|<bucket>|<hour>|<window>|<base>|<chunk>`` — time-weighted samples a rollup stopped
  carrying: a rollup keeps each hour of a time-weighted state as one summarised run (first and last
  sample, count, area), and files the samples of that hour not archived yet here, under the hour
  (``YYYY-MM-DDTHH``) and the rollup's window. Never rewritten; read only when a sample arrives
  inside a summarised hour (the slow path), from the pieces up to the rollup's window.
- ``head`` — which windows are rolled up, and the newest rollup of each bucket; advanced with a
  conditional write, so it only moves forward.
- ``closing-at|<bucket>|<by>|<digest>|<chunk>`` — written by the close of period ``by`` (this one's,
  or a later one's carrying late usage): for one tenant bucket, the time-weighted values in force at
  the period's end, which the next period opens with. Never rewritten: a new version goes beside it.
- ``closing-head|<bucket>`` — which version of the bucket's values stands, and which close wrote
  it. The heads a close changes are flipped in one conditional transaction, and only to a close of
  a later period: a reader sees all the old values or all the new ones, and a closer a month
  behind never puts back older values. (``closing|<bucket>|<chunk>``: the values as stored before
  versions, read while a bucket has no head.)

Three partitions stand beside the periods': ``periods`` (one item per period with usage, written
outside every transaction so concurrent shards never conflict on it), ``closed`` (one per period
whose close completed, with its unbilled tenants) and ``dead`` (stream records aggregate set aside,
by sequence and delivery). Every key of this table is made, and read back, here only: infra's
stream filter for rate takes ``PARTIAL`` from this module too.

A reader needs the head, the rollups of the buckets it wants and the partials of the windows after
the head: at most a sealing threshold's worth, however long the period has run. A rollup holds at
most one run per hour of each time-weighted state, however many samples the state has.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Collection, Container, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from meterline.catalog import Catalog
from meterline.instants import spellings
from meterline.periods import Period
from meterline.ports import ConditionFailedError, Item, PutIf, Store, StoreError
from meterline.records import (
    BUCKETS,
    MAX_ITEM_BYTES,
    book_entries,
    book_of_entries,
    bucket_of,
    entries_tenants,
    key_part,
    pack_book,
    unpack_book,
)
from meterline.terms import Days
from meterline.timeweighted import SampleKey, TimeWeightedState
from meterline.topology import AGGREGATES_TABLE
from meterline.usage import StateKey, TenantPeriod, UsageBook, group_from_json, group_to_json

LOG = logging.getLogger(__name__)

TABLE = AGGREGATES_TABLE.name
MAX_CHUNK_BYTES = MAX_ITEM_BYTES
SEAL_AFTER_PARTIALS = 32
"""Open partials a period gathers at least before its window is sealed and rolled up..."""
SEAL_FRACTION = 4
"""...and at least a quarter of the bytes already rolled up: a rollup rewrites the usage of its
buckets, so without this a period whose states keep growing (time-weighted samples, unique
identifiers) would rewrite all of them every few partials. With it each byte is rewritten about
five times at most over a period, and rate reads no more than about the period's usage."""


PERIOD = "period|"
PARTIAL = "partial|"
"""The sort keys of partial states start with this: the items rate is triggered by."""
PERIODS_PK, CLOSED_PK, DEAD_PK = "periods", "closed", "dead"


def period_pk(period: Period) -> str:
    return f"{PERIOD}{period}"


def is_partial(item: Item) -> bool:
    return str(item["pk"]).startswith(PERIOD) and str(item["sk"]).startswith(PARTIAL)


def billing_period_of(item: Item) -> Period:
    """The period whose ledger holds the item (the period it is billed in)."""
    return Period.parse(str(item["pk"]).removeprefix(PERIOD))


def sequence_key(sequence: str) -> str:
    return f"{int(sequence):040d}"


def fence_sk(window: int) -> str:
    return f"fence|{window:06d}"


def partial_prefix(window: int) -> str:
    return f"{PARTIAL}{window:06d}|"


def partial_sk(window: int, first: str) -> str:
    return partial_prefix(window) + sequence_key(first)


def partial_item(period: Period, window: int, first: str, book: bytes, tenants: int) -> Item:
    """A partial state: usage folded by one aggregate transaction, ``first`` its first record."""
    return {"pk": period_pk(period), "sk": partial_sk(window, first), "book": book, "tenants": tenants}


def marker_prefix(batch: str) -> str:
    return f"batch|{sequence_key(batch)}|"


@dataclass(frozen=True, slots=True)
class Marker:
    """What a partial's transaction applied: stream records ``first`` to ``last`` of a batch, of
    these usage periods."""

    first: int
    last: int
    periods: frozenset[str]

    def covers(self, sequence: str, period: Period) -> bool:
        return str(period) in self.periods and self.first <= int(sequence) <= self.last

    def to_item(self, billed_in: Period, batch: str) -> Item:
        return {
            "pk": period_pk(billed_in),
            "sk": marker_prefix(batch) + sequence_key(str(self.first)),
            "first": str(self.first),
            "last": str(self.last),
            "periods": ",".join(sorted(self.periods)),
        }

    @classmethod
    def of(cls, item: Item) -> Marker:
        periods = frozenset(str(item["periods"]).split(","))
        return cls(int(str(item["first"])), int(str(item["last"])), periods)


def markers(store: Store, billed_in: Period, batch: str) -> list[Marker]:
    """The markers of a stream batch in a period's ledger."""
    return [Marker.of(item) for item in store.query(TABLE, period_pk(billed_in), marker_prefix(batch))]


def dead_item(sequence: str, delivery: str, error: str, usage_pk: str | None) -> Item:
    """A stream record set aside: the same record always gets the same key."""
    item: Item = {
        "pk": DEAD_PK,
        "sk": f"{sequence_key(sequence)}|{key_part(delivery)}",
        "error": error,
        "delivery": delivery,
    }
    if usage_pk is not None:
        item["usage_pk"] = usage_pk
    return item


def note_usage(store: Store, period: Period) -> None:
    store.put(TABLE, {"pk": PERIODS_PK, "sk": str(period)})


def periods_with_usage(store: Store) -> list[Period]:
    return [Period.parse(str(item["sk"])) for item in store.query(TABLE, PERIODS_PK)]


def is_closed(store: Store, period: Period) -> bool:
    return store.get(TABLE, CLOSED_PK, str(period)) is not None


def record_closed(
    store: Store, period: Period, unbilled: list[str], invoices: int, reported: Item | None = None
) -> None:
    """The period's close completed: its unbilled tenants, how many invoices it issued, and what
    else the close reports (``close.CloseRecord``: catalog digest, unbilled usage, amendments)."""
    item: Item = {**(reported or {}), "pk": CLOSED_PK, "sk": str(period), "invoices": invoices}
    store.put(TABLE, {**item, "unbilled": orjson.dumps(unbilled)})


def closed_record(store: Store, period: Period) -> Item | None:
    return store.get(TABLE, CLOSED_PK, str(period))


def closed_periods(store: Store) -> dict[Period, list[str]]:
    """Each closed period with its unbilled tenants."""
    return {
        Period.parse(str(item["sk"])): orjson.loads(item["unbilled"])  # type: ignore[arg-type]
        for item in store.query(TABLE, CLOSED_PK)
        if "unbilled" in item
    }


def closing_prefix(bucket: int) -> str:
    """Where the values in force at a period's end were stored before they had versions."""
    return f"closing|{bucket:02d}|"


CLOSING_HEAD = "closing-head|"


def closing_head_sk(bucket: int) -> str:
    return f"{CLOSING_HEAD}{bucket:02d}"


def closing_version_prefix(bucket: int, version: str) -> str:
    return f"closing-at|{bucket:02d}|{version}|"


def rollup_prefix(bucket: int, window: int, base: int) -> str:
    return f"rollup|{bucket:02d}|{window:06d}|{base + 1:06d}|"


def archive_prefix(bucket: int, hour: datetime) -> str:
    return f"archive|{bucket:02d}|{hour:%Y-%m-%dT%H}|"


@dataclass(frozen=True, slots=True)
class Rollup:
    window: int
    base: int
    chunks: int
    size: int
    """bytes, packed"""


@dataclass(frozen=True, slots=True)
class Head:
    window: int
    """Every window up to this one is rolled up (-1: none yet)."""
    rollups: dict[int, Rollup]
    """The newest rollup of each tenant bucket."""
    final: bool = False
    """The window rolled up last was sealed for good: the period is closed and complete."""

    @property
    def size(self) -> int:
        return sum(rollup.size for rollup in self.rollups.values())

    @classmethod
    def of(cls, item: Item | None) -> Head:
        if item is None:
            return cls(-1, {})
        rollups = orjson.loads(item["rollups"])  # type: ignore[arg-type]
        return cls(
            int(item["window"]),
            {int(bucket): Rollup(*fields) for bucket, fields in rollups.items()},
            item.get("final") is True,
        )

    def to_item(self, period: Period) -> Item:
        rollups = {
            f"{bucket:02d}": [r.window, r.base, r.chunks, r.size]
            for bucket, r in sorted(self.rollups.items())
        }
        return {
            "pk": period_pk(period),
            "sk": "head",
            "window": self.window,
            "rollups": orjson.dumps(rollups),
            "final": self.final,
        }


@dataclass(frozen=True, slots=True)
class Window:
    number: int
    sealed: bool
    final: bool


class PeriodLedger:
    """Reads and compacts the aggregates of one billing period."""

    def __init__(self, catalog: Catalog, store: Store, period: Period) -> None:
        self.catalog = catalog
        self.store = store
        self.period = period
        self.pk = period_pk(period)
        self.archive_reads = 0
        """Slow paths taken: hours of archived samples read back."""
        self._tenants: dict[str, set[TenantPeriod]] = {}
        """The (tenant, period) pairs of each partial read so far, by sort key: partials never change."""
        self._entries: dict[str, list[Any]] = {}
        """Partials ``tenants_in`` decoded, kept until ``book`` or ``roll_up`` reads them: decoded once."""
        self._written: dict[int, tuple[Rollup, UsageBook]] = {}
        """The rollups this ledger's last ``roll_up`` wrote, by bucket, as they were packed: the first
        read of each takes its states from here instead of decoding what was just encoded."""

    # windows ---------------------------------------------------------------------------------

    def head(self) -> Head:
        return Head.of(self.store.get(TABLE, self.pk, "head"))

    def window(self, number: int) -> Window:
        fence = self.store.get(TABLE, self.pk, fence_sk(number))
        return Window(number, fence is not None, fence is not None and fence.get("final") is True)

    def windows_after(self, head: Head) -> Iterator[Window]:
        """The windows after the head, up to and including the open one (or the final one)."""
        if head.final:
            return
        number = head.window + 1
        while True:
            window = self.window(number)
            yield window
            if not window.sealed or window.final:
                return
            number += 1

    def open_window(self) -> int | None:
        """The window new partials join, or None once the period is closed."""
        for window in self.windows_after(self.head()):
            if not window.sealed:
                return window.number
        return None  # the windows ended at a final one, or the head already holds it

    def seal(self, now: datetime, final: bool = False) -> None:
        """Seal the open window (``final``: and close the period); a no-op on a closed period."""
        while (number := self.open_window()) is not None:
            sealed_here = self.seal_window(number, now, final)
            if sealed_here or not final:
                return  # sealed by us, or (not final) by a twin: either way this window is sealed
            # a twin sealed this window but not for good: the period is still open after it

    def seal_window(self, number: int, now: datetime, final: bool = False) -> bool:
        """Seal this window unless it is sealed already; whether this call sealed it."""
        fence: Item = {"pk": self.pk, "sk": fence_sk(number), "sealed_at": now.isoformat(), "final": final}
        return self.store.put_new(TABLE, fence) is None

    # reading ---------------------------------------------------------------------------------

    def partials(self, window: int) -> list[Item]:
        return self.store.query(TABLE, self.pk, partial_prefix(window))

    def open_partials(self, head: Head | None = None) -> list[Item]:
        """Every partial not rolled up yet."""
        head = head or self.head()
        return [item for window in self.windows_after(head) for item in self.partials(window.number)]

    def book(
        self,
        tenants: Collection[str] | None = None,
        head: Head | None = None,
        partials: list[Item] | None = None,
    ) -> UsageBook:
        """The period's usage (``tenants``: only theirs): rollups plus the partials after them
        (``partials``: as already read after ``head``). Complete once the period is sealed for
        good and rolled up."""
        head = head or self.head()
        buckets = range(BUCKETS) if tenants is None else {bucket_of(tenant) for tenant in tenants}
        book = UsageBook()
        for bucket in sorted(buckets):
            book.merge(self.rolled_up(head, bucket, tenants), adopt=True)
        for item in self.open_partials(head) if partials is None else partials:
            book.merge(book_of_entries(self.catalog, self._read(item), tenants), adopt=True)
        return book

    def tenants_in(self, partial: Item) -> set[TenantPeriod]:
        """The (tenant, period) pairs a partial of this ledger holds."""
        known = self._tenants.get(str(partial["sk"]))
        if known is None:
            sk = str(partial["sk"])
            entries = self._entries[sk] = book_entries(_blob(partial))
            known = self._tenants[sk] = entries_tenants(entries)
        return known

    def _read(self, partial: Item) -> list[Any]:
        """A partial's entries, decoded now or taken from ``tenants_in``; its tenants remembered."""
        sk = str(partial["sk"])
        entries = self._entries.pop(sk, None)
        if entries is None:
            entries = book_entries(_blob(partial))
            self._tenants[sk] = entries_tenants(entries)
        return entries

    def rolled_up(self, head: Head, bucket: int, tenants: Collection[str] | None = None) -> UsageBook:
        rollup = head.rollups.get(bucket)
        if rollup is None:
            return UsageBook()
        written = self._written.pop(bucket, None)
        if written is not None and written[0] == rollup:
            book = _as_read(written[1], tenants)
        else:
            chunks = self.store.query(TABLE, self.pk, rollup_prefix(bucket, rollup.window, rollup.base))
            if len(chunks) != rollup.chunks:
                raise StoreError(
                    f"rollup {bucket} of {self.period} has {len(chunks)} of its {rollup.chunks} chunks"
                )
            book = unpack_book(self.catalog, b"".join(_blob(chunk) for chunk in chunks), tenants)
        for (tenant, period), days, key, state in _time_weighted(book):
            state.attach(Archive(self, bucket, rollup.window, tenant, period, days, key))
        return book

    def archived(self, archive: Archive, hour: datetime) -> list[SampleKey]:
        """The slow path: a state's samples of one hour, from the archive pieces its rollup's
        window covers. A piece a roller left incomplete (it died writing it, or is writing it now)
        is passed over: the rollups the head went through archived the same samples completely."""
        self.archive_reads += 1
        LOG.info(
            "slow path: reading back archived hour %s of %s's %s (%s) from the ledger of %s,"
            " as a sample or an instant falls inside it",
            f"{hour:%Y-%m-%dT%H}",
            archive.tenant,
            archive.key[0],
            archive.period,
            self.period,
        )
        pieces: dict[str, list[Item]] = {}
        for item in self.store.query(TABLE, self.pk, archive_prefix(archive.bucket, hour)):
            piece, _ = str(item["sk"]).rsplit("|", 1)
            if int(piece.split("|")[3]) <= archive.window:
                pieces.setdefault(piece, []).append(item)
        state = TimeWeightedState()
        for chunks in pieces.values():
            if len(chunks) != int(chunks[0]["chunks"]):
                continue
            book = unpack_book(self.catalog, b"".join(_blob(chunk) for chunk in chunks), {archive.tenant})
            found = book.segments(archive.tenant, archive.period).get(archive.days, {}).get(archive.key)
            if isinstance(found, TimeWeightedState):
                state.merge(found)
        return state.samples()

    def due_for_rollup(self, head: Head, open_partials: list[Item]) -> bool:
        """Enough open partials, and enough bytes in them next to what is rolled up already."""
        if len(open_partials) < SEAL_AFTER_PARTIALS:
            return False
        return sum(len(_blob(item)) for item in open_partials) * SEAL_FRACTION >= head.size

    # compaction ------------------------------------------------------------------------------

    def roll_up(self, attempts: int = 8) -> set[tuple[str, Period]]:
        """Fold every sealed window after the head into the rollups and advance the head; return
        the (tenant, period) pairs folded in. Safe to run twice, or twice at once."""
        for _ in range(attempts):
            with spellings(learn=True):  # the partials' sample times, written again as they were read
                folded = self._roll_up_once()
            if folded is not None:
                return folded
        raise ConditionFailedError(0, f"the head of {self.period} kept moving during {attempts} roll-ups")

    def _roll_up_once(self) -> set[tuple[str, Period]] | None:
        """``roll_up``'s one attempt: None if a twin advanced the head first."""
        head = self.head()
        sealed = [w for w in self.windows_after(head) if w.sealed]
        if not sealed:
            return set()
        target = sealed[-1].number
        additions = UsageBook()
        for window in sealed:
            for item in self.partials(window.number):
                additions.merge_json(self.catalog, self._read(item))
        folded = set(additions.states)  # every partial's (tenant, period) pairs: the book has a key for each
        rollups = dict(head.rollups)
        written: dict[int, tuple[Rollup, UsageBook]] = {}
        for bucket, fresh in sorted(_by_bucket(additions).items()):
            book = self.rolled_up(head, bucket)
            book.merge(fresh, adopt=True)
            summary, archive = _stored(book)
            self.write_archive(bucket, target, head.window, archive)
            rollups[bucket] = self.write_rollup(bucket, target, head.window, summary)
            written[bucket] = (rollups[bucket], summary)
        advanced = Head(target, rollups, sealed[-1].final)
        expected = None if head.window < 0 else head.window
        try:
            self.store.transact([PutIf(TABLE, advanced.to_item(self.period), "window", expected)])
        except ConditionFailedError:
            return None  # a twin advanced the head first: fold what is left after its head
        self._written = written
        return folded

    def write_rollup(self, bucket: int, window: int, base: int, book: UsageBook) -> Rollup:
        """Write the bucket's rollup, packed and cut into items under the size limit."""
        chunks, size = self.write_chunks(rollup_prefix(bucket, window, base), pack_book(book))
        return Rollup(window, base, chunks, size)

    def write_archive(self, bucket: int, window: int, base: int, hours: Mapping[datetime, UsageBook]) -> None:
        """Archive, per hour, the time-weighted samples the bucket's next rollup stops carrying."""
        for hour, pieces in sorted(hours.items()):
            prefix = f"{archive_prefix(bucket, hour)}{window:06d}|{base + 1:06d}|"
            self.write_chunks(prefix, pack_book(pieces))

    def write_chunks(self, prefix: str, packed: bytes) -> tuple[int, int]:
        """Packed bytes cut into items under the size limit; how many, and how many bytes."""
        chunks = [packed[at : at + MAX_CHUNK_BYTES] for at in range(0, len(packed), MAX_CHUNK_BYTES)]
        for index, blob in enumerate(chunks):
            item: Item = {"pk": self.pk, "sk": f"{prefix}{index:04d}", "book": blob, "chunks": len(chunks)}
            self.store.put(TABLE, item)
        return len(chunks), len(packed)

    # carried values ----------------------------------------------------------------------------

    def write_closing(self, closing: Closing) -> None:
        """Store the time-weighted values in force at the period's end (the close's, deterministic:
        twin closers write the same; a close of a later period may have updated them already)."""
        self.update_closing(closing, by=self.period)

    def update_closing(self, closing: Closing, by: Period, attempts: int = 8) -> None:
        """Replace the stored values in force at the period's end for these tenants, as the close
        of ``by`` carried them (this period's, or a later one's, with late usage): each bucket they
        are in is written whole under a new version, and the buckets' heads are flipped to them in
        one conditional transaction, so a reader sees all the old values or all the new ones; a
        bucket a close of ``by`` or later stored already is kept (a closer a month behind never puts
        back what it knew then)."""
        by_bucket: dict[int, dict[str, Mapping[StateKey, Decimal]]] = {}
        for tenant, values in closing.items():
            by_bucket.setdefault(bucket_of(tenant), {})[tenant] = values
        for _ in range(attempts):
            heads = self.closing_heads()
            flips = [
                self.write_closing_version(bucket, heads.get(bucket), updates, by)
                for bucket, updates in sorted(by_bucket.items())
                if bucket not in heads or Period.parse(str(heads[bucket]["by"])) < by
            ]
            if not flips:
                return
            try:
                self.store.transact(flips)
            except ConditionFailedError:
                continue  # another close flipped a head first: merge onto what it stored
            return
        raise ConditionFailedError(0, f"the closing values of {self.period} kept moving")

    def write_closing_version(self, bucket: int, head: Item | None, updates: Closing, by: Period) -> PutIf:
        """Write the bucket's values with ``updates`` as a new version; return the head's flip."""
        values_of: dict[str, Mapping[StateKey, Decimal]] = {}
        values_of.update(self.bucket_closing(bucket, head))
        values_of.update(updates)
        packed = pack_closing({tenant: values for tenant, values in values_of.items() if values})
        version = f"{by}|{hashlib.sha256(packed).hexdigest()[:16]}"
        chunks, _ = self.write_chunks(closing_version_prefix(bucket, version), packed)
        flipped: Item = {
            "pk": self.pk,
            "sk": closing_head_sk(bucket),
            "by": str(by),
            "version": version,
            "chunks": chunks,
        }
        return PutIf(TABLE, flipped, "version", None if head is None else head["version"])

    def closing_heads(self) -> dict[int, Item]:
        """Each bucket's head: which version of its values in force at the period's end stands."""
        return {
            int(str(item["sk"]).removeprefix(CLOSING_HEAD)): item
            for item in self.store.query(TABLE, self.pk, CLOSING_HEAD)
        }

    def bucket_closing(
        self, bucket: int, head: Item | None, tenants: Container[str] | None = None
    ) -> dict[str, dict[StateKey, Decimal]]:
        """The bucket's stored values in force at the period's end: the version its head names
        (without a head, the chunks stored before versions, if any)."""
        if head is None:
            chunks = self.store.query(TABLE, self.pk, closing_prefix(bucket))
            expected = int(chunks[0].get("chunks", len(chunks))) if chunks else 0
        else:
            chunks = self.store.query(TABLE, self.pk, closing_version_prefix(bucket, str(head["version"])))
            expected = int(head["chunks"])
        if len(chunks) != expected:
            raise StoreError(
                f"the closing values of bucket {bucket} of {self.period} have {len(chunks)}"
                f" of their {expected} chunks"
            )
        if not chunks:
            return {}
        return unpack_closing(b"".join(_blob(chunk) for chunk in chunks), tenants)

    def closing(self, tenants: Collection[str] | None = None) -> dict[str, dict[StateKey, Decimal]]:
        """The values in force at the period's end, as its close (or a later one) stored them (none
        if not closed)."""
        buckets = range(BUCKETS) if tenants is None else {bucket_of(tenant) for tenant in tenants}
        heads = self.closing_heads()
        closing: dict[str, dict[StateKey, Decimal]] = {}
        for bucket in sorted(buckets):
            closing.update(self.bucket_closing(bucket, heads.get(bucket), tenants))
        return closing


@dataclass(frozen=True, slots=True)
class Archive:
    """Where one time-weighted state of a rollup reads its archived samples back."""

    ledger: PeriodLedger
    bucket: int
    window: int
    """The rollup's window: pieces filed under later ones are not in its summary."""
    tenant: str
    period: Period
    days: Days
    """The segment of the period whose state it is."""
    key: StateKey

    def samples(self, hour: datetime) -> list[SampleKey]:
        return self.ledger.archived(self, hour)


def _stored(book: UsageBook) -> tuple[UsageBook, dict[datetime, UsageBook]]:
    """The book as a rollup keeps it (time-weighted states summarised, every other state as it
    is) and, per hour, the samples of time-weighted states it stops carrying, for the archive."""
    summary = UsageBook()
    for tenant_period, segments in book.states.items():
        summary.states[tenant_period] = {days: dict(states) for days, states in segments.items()}
    hours: dict[datetime, UsageBook] = {}
    for (tenant, period), days, key, state in _time_weighted(book):
        summary.states[(tenant, period)][days][key], archive = state.stored()
        for hour, part in archive.items():
            hours.setdefault(hour, UsageBook()).segment(tenant, period, days)[key] = part
    return summary, hours


def _by_bucket(book: UsageBook) -> dict[int, UsageBook]:
    """The book's states split by tenant bucket (each tenant's in the book's order)."""
    books: dict[int, UsageBook] = {}
    buckets: dict[str, int] = {}
    for tenant_period, segments in book.states.items():
        tenant = tenant_period[0]
        bucket = buckets.get(tenant)
        if bucket is None:
            bucket = buckets[tenant] = bucket_of(tenant)
        part = books.get(bucket)
        if part is None:
            part = books[bucket] = UsageBook()
        part.states[tenant_period] = segments
    return books


def _as_read(packed: UsageBook, tenants: Collection[str] | None) -> UsageBook:
    """A book as ``unpack_book(pack_book(packed), tenants)`` reads it back, from its own states (which
    become the new book's): segments without states are not packed."""
    book = UsageBook()
    for tenant_period, segments in packed.states.items():
        if tenants is None or tenant_period[0] in tenants:
            kept = {days: states for days, states in segments.items() if states}
            if kept:
                book.states[tenant_period] = kept
    return book


def _time_weighted(book: UsageBook) -> Iterator[tuple[TenantPeriod, Days, StateKey, TimeWeightedState]]:
    """Every time-weighted state of the book, with its tenant and period, segment and key."""
    for tenant_period, segments in book.states.items():
        for days, states in segments.items():
            for key, state in states.items():
                if isinstance(state, TimeWeightedState):
                    yield tenant_period, days, key, state


Closing = Mapping[str, Mapping[StateKey, Decimal]]
"""Time-weighted values in force at a period's end, by tenant and (meter key, group)."""


def pack_closing(closing: Closing) -> bytes:
    rows = [
        [tenant, meter, [group_to_json(value) for value in group], str(in_force)]
        for tenant, values in sorted(closing.items())
        for (meter, group), in_force in values.items()
    ]
    return zlib.compress(orjson.dumps(rows), 6)


def unpack_closing(blob: bytes, tenants: Container[str] | None = None) -> dict[str, dict[StateKey, Decimal]]:
    closing: dict[str, dict[StateKey, Decimal]] = {}
    for tenant, meter, group, in_force in orjson.loads(zlib.decompress(blob)):
        if tenants is None or tenant in tenants:
            key = (meter, tuple(group_from_json(value) for value in group))
            closing.setdefault(tenant, {})[key] = Decimal(in_force)
    return closing


def _blob(item: Item) -> bytes:
    return bytes(item["book"])  # type: ignore[arg-type]
