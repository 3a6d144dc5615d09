"""Ledger records: how accepted usage, partial states and invoices are laid out as store items.

Keys are built from parts escaped so that they are valid in DynamoDB, Firestore and Azure Tables
alike (no ``/``, ``#``, ``\\``, ``?``), with ``|`` between parts.
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

from meterline.catalog import Catalog
from meterline.events import EventKey
from meterline.metering import Group, Measurement
from meterline.periods import Period
from meterline.ports import Item
from meterline.usage import UsageBook

BUCKETS = 16
"""Tenants spread over this many partial-state partitions per period."""

_ESCAPES = {ord(c): f"%{ord(c):02X}" for c in "%/#\\?|"} | {code: f"%{code:02X}" for code in range(32)}


def key_part(text: str) -> str:
    return text.translate(_ESCAPES)


def bucket_of(tenant: str) -> int:
    return hashlib.blake2b(tenant.encode(), digest_size=2).digest()[0] % BUCKETS


def event_digest(key: EventKey) -> str:
    return hashlib.blake2b("\x00".join(key).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


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
    measurements: tuple[tuple[str, Group, Decimal | str | None], ...]
    delivery: str

    @property
    def tenant(self) -> str:
        return self.key[0]

    @property
    def event_id(self) -> str:
        return self.key[2]

    @property
    def period(self) -> Period:
        return Period(self.time.year, self.time.month)

    def to_item(self) -> Item:
        return {
            "pk": event_digest(self.key),
            "sk": "event",
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
            tuple((m, tuple(_untag(x) for x in g), _untag(v)) for m, g, v in measurements),
            str(item["at"]),
        )

    def record_into(self, book: UsageBook, catalog: Catalog, period: Period) -> None:
        book.record(
            self.tenant,
            period,
            [Measurement(catalog.meters[meter], group, value) for meter, group, value in self.measurements],
            self.time,
            self.event_id,
        )


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
    entries = orjson.loads(zlib.decompress(blob))
    if tenants is not None:
        entries = [entry for entry in entries if entry["tenant"] in tenants]
    return UsageBook.from_json(catalog, entries)


def book_tenants(blob: bytes) -> set[tuple[str, Period]]:
    """The (tenant, period) pairs a packed book holds, without building its states."""
    return {(entry["tenant"], Period.parse(entry["period"])) for entry in orjson.loads(zlib.decompress(blob))}
