"""Ledger records: how accepted usage, partial states and invoices are laid out as store items.

Keys are built from parts escaped so that they are valid in DynamoDB, Firestore and Azure Tables
alike (no ``/``, ``#``, ``\\``, ``?``), with ``|`` between parts. Every key built from text a
producer chose is injective: two different inputs never share a key (``key_part`` escapes ``%``
and ``|`` too; ``event_digest`` hashes length-prefixed parts).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from meterline.aggregation import new_state
from meterline.catalog import Catalog
from meterline.events import EventError, EventKey, Reason, digest, read_event
from meterline.metering import Group, Metering, Reading
from meterline.periods import Period
from meterline.ports import Item
from meterline.usage import UsageBook, fold

BUCKETS = 16
"""Tenants spread over this many partial-state partitions per period."""
MAX_ITEM_BYTES = 350_000
"""What one ledger item may hold: below DynamoDB's 400 KB item limit (the strictest store's),
with room for keys and attributes."""

_ESCAPES = {ord(c): f"%{ord(c):02X}" for c in "%/#\\?|"} | {code: f"%{code:02X}" for code in range(32)}


def key_part(text: str) -> str:
    return text.translate(_ESCAPES)


def bucket_of(tenant: str) -> int:
    return hashlib.blake2b(tenant.encode("utf-8", "surrogatepass"), digest_size=2).digest()[0] % BUCKETS


def event_digest(key: EventKey) -> str:
    return hashlib.blake2b(framed(key), digest_size=16).hexdigest()


def usage_key(key: EventKey) -> tuple[str, str]:
    """Where the usage ledger files an accepted event."""
    return event_digest(key), USAGE_SK


USAGE_SK = "event"


def framed(parts: tuple[str, ...]) -> bytes:
    """The parts as one byte string from which they can be read back: each is its UTF-8 length,
    a colon and its UTF-8 bytes (a netstring), so no choice of parts can pass for another."""
    encoded = [part.encode("utf-8", "surrogatepass") for part in parts]
    return b"".join(b"%d:%b" % (len(part), part) for part in encoded)


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a record came from: topic, partition and offset (Kafka), or their equivalents."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}|{self.partition}|{self.offset}"


@dataclass(frozen=True, slots=True)
class AcceptedUsage:
    """An accepted event as the usage ledger keeps it: its dedup identity and its measurements."""

    key: EventKey
    fingerprint: bytes
    time: datetime
    measurements: tuple[tuple[str, Group, Decimal | int | str | None], ...]
    delivery: str

    @property
    def tenant(self) -> str:
        return self.key[0]

    @property
    def event_id(self) -> str:
        return self.key[2]

    @property
    def period(self) -> Period:
        return Period.of(self.time)

    def to_item(self) -> Item:
        return {
            "pk": event_digest(self.key),
            "sk": USAGE_SK,
            "subject": self.key[0],
            "source": self.key[1],
            "id": self.key[2],
            "fp": self.fingerprint,
            "time": self.time.isoformat(),
            "m": orjson.dumps([[m, list(g), v] for m, g, v in self.measurements], default=_tag),
            "at": self.delivery,
        }

    @classmethod
    def from_item(cls, item: Item) -> AcceptedUsage:
        measurements = orjson.loads(item["m"])  # type: ignore[arg-type]
        return cls(
            (str(item["subject"]), str(item["source"]), str(item["id"])),
            bytes(item["fp"]),  # type: ignore[arg-type]
            datetime.fromisoformat(str(item["time"])),
            tuple([(m, tuple([_untag(x) for x in g]) if g else (), _untag(v)) for m, g, v in measurements]),
            str(item["at"]),
        )

    def record_into(self, book: UsageBook, catalog: Catalog, period: Period) -> None:
        """``fold`` without a reading per measurement: aggregate calls this once per event."""
        meters = catalog.meters
        time, event_id = self.time, self.key[2]
        states = book.states_on(self.key[0], period, time.day)
        for meter, group, value in self.measurements:
            key = (meter, group)
            state = states.get(key)
            if state is None:
                state = states[key] = new_state(meters[meter].aggregation)
            state.add(value, time, event_id)


def _tag(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$d": str(value)}
    raise TypeError(type(value).__name__)


def _untag(value: Any) -> Any:
    """Numbers travel tagged; an untagged string is a group value or a unique_count identifier."""
    if isinstance(value, dict):
        return Decimal(value["$d"])
    return value


def pack_book(book: UsageBook) -> bytes:
    # No Decimal reaches orjson: UsageBook.to_json spells group values and states as JSON itself.
    return zlib.compress(orjson.dumps(book.to_json()), 6)


def unpack_book(catalog: Catalog, blob: bytes, tenants: Container[str] | None = None) -> UsageBook:
    """The packed book, or (``tenants``) only those tenants' part of it."""
    return book_of_entries(catalog, book_entries(blob), tenants)


def book_entries(blob: bytes) -> list[Any]:
    """A packed book read as far as its JSON: one entry per tenant, period and segment."""
    entries: list[Any] = orjson.loads(zlib.decompress(blob))
    return entries


def book_of_entries(catalog: Catalog, entries: list[Any], tenants: Container[str] | None = None) -> UsageBook:
    if tenants is not None:
        entries = [entry for entry in entries if entry["tenant"] in tenants]
    return UsageBook.from_json(catalog, entries)


def entries_tenants(entries: list[Any]) -> set[tuple[str, Period]]:
    """The (tenant, period) pairs a book's entries hold, without building its states."""
    return {(entry["tenant"], Period.parse(entry["period"])) for entry in entries}


# --- from a delivered record to what the usage ledger keeps ------------------------------------

UsageFields = tuple[str, str, str, datetime, list[Reading], bytes]
"""subject, source, id, time, the meters' readings and the canonical content."""


def read_usage(metering: Metering, raw: bytes | str) -> UsageFields:
    """Everything the pipeline and `meterline rate` decide about one record before dedup, alike:
    its fields and readings, or an EventError with the reason it is rejected. No other exception
    leaves: one that would (a bug, an input nobody foresaw) rejects the record as ``unprocessable``
    rather than stopping a partition or a report on it."""
    try:
        subject, source, event_id, event_type, time, data, content = read_event(raw)
        readings = metering.readings(event_type, data)
        size = len(raw) if type(raw) is bytes else 4 * len(raw)  # UTF-8 takes up to 4 bytes a character
        if (size + 1024) * metering.weights[event_type] > MAX_ITEM_BYTES:  # only then can it outgrow one
            _check_fits(subject, source, event_id, time, readings, content)
    except EventError:
        raise
    except Exception as error:
        raise unprocessable(error) from error
    return subject, source, event_id, time, readings, content


def usage_record(metering: Metering, raw: bytes | str, delivery: str) -> tuple[AcceptedUsage, Item]:
    """The accepted usage a valid record makes and its usage ledger item; raises EventError only."""
    subject, source, event_id, time, readings, content = read_usage(metering, raw)
    try:
        usage = AcceptedUsage(
            (subject, source, event_id),
            digest(content),
            time,
            tuple([(meter_key, group, value) for (meter_key, group), _, value in readings]),
            delivery,
        )
        return usage, usage.to_item()
    except Exception as error:
        raise unprocessable(error) from error


def unprocessable(error: Exception) -> EventError:
    first_line = str(error).splitlines()[0][:200] if str(error) else ""
    return EventError(Reason.UNPROCESSABLE, f"{type(error).__name__} while processing it: {first_line}")


_LONGEST_DELIVERY = "x" * 300
"""A Kafka topic name (at most 249 characters), a partition and an offset."""


def _check_fits(
    subject: str, source: str, event_id: str, time: datetime, readings: list[Reading], content: bytes
) -> None:
    """Reject a valid event whose usage item, or whose state alone in a partial, is larger than a
    ledger item may be: the store would refuse it on every attempt."""
    measurements = tuple([(meter_key, group, value) for (meter_key, group), _, value in readings])
    usage = AcceptedUsage((subject, source, event_id), digest(content), time, measurements, _LONGEST_DELIVERY)
    book = UsageBook()
    fold(book.states_of(subject, Period.of(time)), readings, time, event_id)
    for record, size in (
        ("usage item", item_bytes(usage.to_item())),
        ("partial state", len(pack_book(book))),
    ):
        if size > MAX_ITEM_BYTES:
            raise EventError(
                Reason.UNPROCESSABLE,
                f"its {record} would take {size:,} bytes; a ledger item holds at most {MAX_ITEM_BYTES:,}",
            )


def item_bytes(item: Item) -> int:
    """An item's size as DynamoDB counts it: names and values, text as UTF-8, numbers at most 21."""
    size = 0
    for name, value in item.items():
        size += len(name.encode("utf-8", "surrogatepass"))
        if isinstance(value, str):
            size += len(value.encode("utf-8", "surrogatepass"))
        elif isinstance(value, bytes):
            size += len(value)
        else:
            size += 1 if isinstance(value, bool) else 21
    return size
