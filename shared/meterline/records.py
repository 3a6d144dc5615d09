"""Ledger records: how accepted usage, partial states and invoices are laid out as store items.

Keys are built from parts escaped so that they are valid in DynamoDB, Firestore and Azure Tables
alike (no ``/``, ``#``, ``\\``, ``?``), with ``|`` between parts. Every key built from text a
producer chose is injective: two different inputs never share a key (``key_part`` escapes ``%``
and ``|`` too; ``event_digest`` hashes length-prefixed parts).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from meterline.aggregation import STATE_TYPES, Value
from meterline.catalog import Catalog
from meterline.events import EventError, EventKey, Reason, common_time, digest, read_event
from meterline.instants import isoformat_text
from meterline.metering import Group, Metering, Reading
from meterline.periods import Period
from meterline.ports import Item
from meterline.usage import States, UsageBook, fold

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
    """The digest of the ``framed`` key; spelled out, as it is made once per event."""
    subject, source, event_id = key
    text = f"{len(subject)}:{subject}{len(source)}:{source}{len(event_id)}:{event_id}"
    hashed = _DIGEST.copy()
    if text.isascii():  # then each part's length in characters is its length in bytes
        hashed.update(text.encode())
    else:
        hashed.update(framed(key))
    return hashed.hexdigest()


_DIGEST = hashlib.blake2b(digest_size=16)
"""An empty 16-byte BLAKE2b, never updated: the meter's digests start from a copy of it, which
costs a fraction of making one (keyword arguments parsed, parameters set) per digest."""


def usage_key(key: EventKey) -> tuple[str, str]:
    """Where the usage ledger files an accepted event."""
    return event_digest(key), USAGE_SK


USAGE_SK = "event"


def framed(parts: tuple[str, ...]) -> bytes:
    """The parts as one byte string from which they can be read back: each is its UTF-8 length,
    a colon and its UTF-8 bytes (a netstring), so no choice of parts can pass for another."""
    encoded = [part.encode("utf-8", "surrogatepass") for part in parts]
    return b"".join(b"%d:%b" % (len(part), part) for part in encoded)


class Delivery(NamedTuple):
    """Where a record came from: topic, partition and offset (Kafka), or their equivalents. A
    tuple: one is made per delivered record, at under half a frozen dataclass's cost."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return partition_prefix(self.topic, self.partition) + str(self.offset)


def partition_prefix(topic: str, partition: int) -> str:
    """What every delivery of one partition spells before its offset (``str(Delivery)``): a batch
    spells it once per partition."""
    return f"{topic}|{partition}|"


@dataclass(frozen=True, slots=True)
class AcceptedUsage:
    """An accepted event as the usage ledger keeps it: its dedup identity and its measurements."""

    key: EventKey
    fingerprint: bytes
    time: datetime
    measurements: tuple[tuple[str, Group, Decimal | int | str | None], ...]
    delivery: str
    stamp: str | None = field(default=None, repr=False, compare=False)
    """``time.isoformat()``, when the usage item's text is known to be it (``instants``)."""
    period: Period = field(init=False, repr=False, compare=False)
    """The month of ``time``, taken once: aggregate asks for it several times per record."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "period", Period.of(self.time))

    @property
    def tenant(self) -> str:
        return self.key[0]

    @property
    def event_id(self) -> str:
        return self.key[2]

    def to_item(self) -> Item:
        readings = [((meter_key, group), None, value) for meter_key, group, value in self.measurements]
        return usage_item(self.key, self.fingerprint, self.time, measurements_json(readings), self.delivery)

    @classmethod
    def from_item(cls, item: Item) -> AcceptedUsage:
        measurements = orjson.loads(item["m"])  # type: ignore[arg-type]
        time = str(item["time"])
        return cls(
            (str(item["subject"]), str(item["source"]), str(item["id"])),
            bytes(item["fp"]),  # type: ignore[arg-type]
            datetime.fromisoformat(time),
            tuple([(m, tuple([_untag(x) for x in g]) if g else (), _untag(v)) for m, g, v in measurements]),
            str(item["at"]),
            time if isoformat_text(time) else None,
        )


def record_all(book: UsageBook, catalog: Catalog, usages: Iterable[AcceptedUsage]) -> set[Period]:
    """Fold each usage into its own period's states, without a reading per measurement (aggregate
    folds a batch so); return the periods folded."""
    made = {key: STATE_TYPES[meter.aggregation] for key, meter in catalog.meters.items()}
    periods: set[Period] = set()
    last: Period | None = None
    tables: dict[str, States | list[States]] = {}
    for usage in usages:
        time, (tenant, _, event_id), period = usage.time, usage.key, usage.period
        if period is not last:  # one object per month: most batches hold one
            periods.add(period)
            last, tables = period, book.days_of(period)
        table = tables.get(tenant)
        if table is None:
            table = tables[tenant] = book.day_states(tenant, period)
        states = table[time.day] if isinstance(table, list) else table
        for meter, group, value in usage.measurements:
            key = (meter, group)
            state = states.get(key)
            if state is None:
                state = states[key] = made[meter]()
            state.add(value, time, event_id)
    return periods


def usage_item(
    key: EventKey, fingerprint: bytes, time: datetime | str, measurements: bytes, delivery: str
) -> Item:
    """An accepted event's usage ledger item: ``time`` as a UTC datetime or as its isoformat (see
    ``ledger_time``), ``measurements`` as ``measurements_json`` spells them."""
    return {
        "pk": event_digest(key),
        "sk": USAGE_SK,
        "subject": key[0],
        "source": key[1],
        "id": key[2],
        "fp": fingerprint,
        "time": time if isinstance(time, str) else time.isoformat(),
        "m": measurements,
        "at": delivery,
    }


def measurements_json(readings: Iterable[tuple[tuple[str, Group], object, Value]]) -> bytes:
    """Each reading as ``[meter, [group values], value]``, every number tagged as a decimal
    (``{"$d": digits}``, read back as ``Decimal``); an int value is spelled as ``Decimal(value)`` is."""
    return orjson.dumps(
        [
            (meter_key, group, {"$d": str(value)} if type(value) in _NUMBERS else value)
            for (meter_key, group), _, value in readings
        ],
        default=_tag,
    )


_NUMBERS = frozenset((int, Decimal))


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
    pairs = {(entry["tenant"], entry["period"]) for entry in entries}
    months = {text: Period.parse(text) for text in {text for _, text in pairs}}
    return {(tenant, months[text]) for tenant, text in pairs}


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


_loads, _dumps, _SORTED = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS
_WITH_DATA = 7
"""The attributes of an event with data and without extensions: specversion, id, source, type,
subject, time and data."""
_NEWLINE = ord("\n")


def _plain_entry(metering: Metering, line: bytes | str, delivery: str) -> UsageEntry | None:
    """The usage entry of the event nearly every producer writes, read in one decode and one
    encode: the six attributes, data of text and integers only, spelled compactly, of a type
    whose meters read one data key each (``Metering.plain``). None for anything else, which
    ``read_usage`` reads and, if need be, rejects with its reason."""
    if type(line) is not bytes:
        return None
    try:
        document = _loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(document) is not dict or len(document) != _WITH_DATA:
        return None
    try:
        data, event_type, subject = document["data"], document["type"], document["subject"]
        source, event_id, time = document["source"], document["id"], document["time"]
        if document["specversion"] != "1.0" or type(data) is not dict or type(event_type) is not str:
            return None
    except KeyError:
        return None
    if event_type not in metering.plain or (len(line) + 1024) * metering.weights[event_type] > MAX_ITEM_BYTES:
        return None  # read_usage checks what such a line's records would take
    if not (
        type(subject) is str and subject and type(source) is str and source
        and type(event_id) is str and event_id and event_type and type(time) is str
    ):  # fmt: skip
        return None
    for found in data.values():
        kind = type(found)
        if kind is not str and kind is not int:  # a float, an object, true, null: read_usage
            return None
    measurements = metering.plain_measurements[event_type](data)
    if measurements is None:
        return None
    # One call writes both the measurements and the canonical content (keys sorted, compact):
    # [measurements, content]. orjson writes no longer than any spelling of the same document, so
    # the content is as long as the line (less its newline) only if the line was compact with no
    # key repeated (see events._compact_size). Its first key is "data", whose value is an object:
    # `{"data":{` appears nowhere else in what is written (every `"` inside text is escaped, and
    # no other object holds an object), so finding it where a content that long starts proves it.
    both = _dumps((measurements, document), option=_SORTED)
    start = len(both) - 1 - len(line) + (line[-1] == _NEWLINE)
    if start < 2 or both[start : start + _CONTENT_START_SIZE] != _CONTENT_START:
        return None
    moment = common_time(time)
    if moment is None:
        return None
    key = (subject, source, event_id)
    fingerprint = _DIGEST.copy()  # events.digest of the content, from the copy
    fingerprint.update(both[start:-1])
    item: Item = {
        "pk": event_digest(key),
        "sk": USAGE_SK,
        "subject": subject,
        "source": source,
        "id": event_id,
        "fp": fingerprint.digest(),
        "time": ledger_time(time, moment),
        "m": both[1 : start - 1],
        "at": delivery,
    }  # usage_item, spelled out: one fewer call per event
    return key, moment, item


_CONTENT_START = b'{"data":{'
_CONTENT_START_SIZE = len(_CONTENT_START)


def ledger_time(common: str, moment: datetime) -> str:
    """``moment.isoformat()``, where ``moment`` is ``common_time(common)``: for a UTC spelling
    (``Z``) read off the text in a tenth of the time (``Z`` as ``+00:00``, milliseconds as
    microseconds, no fraction when it is zero); an offset spelling names another wall-clock time."""
    if common[-1] != "Z":
        return moment.isoformat()
    size = len(common)
    if size == 20 or common[20:-1] in _NO_FRACTION:
        return common[:19] + _UTC
    return common[:-1] + (_UTC if size == 27 else _MICROSECONDS_UTC)


_UTC, _MICROSECONDS_UTC, _NO_FRACTION = "+00:00", "000+00:00", ("000", "000000")


UsageEntry = tuple[EventKey, datetime, Item]
"""What the meter makes of a valid record: its dedup key, its time and its usage item (a plain
tuple: one is made per record)."""


def usage_entry(metering: Metering, raw: bytes | str, delivery: str) -> UsageEntry:
    """The meter's read of a record: one decode, and the usage item built straight from it;
    raises EventError only (as ``usage_record``, whose item this is)."""
    try:
        entry = _plain_entry(metering, raw, delivery)
    except Exception as error:
        raise unprocessable(error) from error
    if entry is not None:
        return entry
    subject, source, event_id, time, readings, content = read_usage(metering, raw)
    try:
        key = (subject, source, event_id)
        item = usage_item(key, digest(content), time, measurements_json(readings), delivery)
    except Exception as error:
        raise unprocessable(error) from error
    return key, time, item


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
