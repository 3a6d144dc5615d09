"""In-memory store, publisher and statement exchange: the fakes for unit tests and the
handler-speed benchmark. They pass the same contract suites as the real adapters."""

from __future__ import annotations

import bisect
import copy
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from meterline.exchange import ExchangeConflictError
from meterline.ports import (
    ConditionFailedError,
    Expect,
    Item,
    StoreError,
    Write,
    condition_holds,
    transaction_keys,
)


class MemoryStore:
    def __init__(self, tables: Sequence[str]) -> None:
        self.tables: dict[str, dict[tuple[str, str], Item]] = {name: {} for name in tables}
        self._sort_keys: dict[tuple[str, str], list[str]] = {}
        """Per table and partition queried, its sort keys in order: a query costs what it finds,
        as on the real stores, not the size of the table (made on a partition's first query, so
        that partitions only read by key, one per event, cost nothing)."""
        self._lock = threading.Lock()

    def _table(self, name: str) -> dict[tuple[str, str], Item]:
        try:
            return self.tables[name]
        except KeyError:
            raise StoreError(f"no table {name!r}") from None

    def get(self, table: str, pk: str, sk: str) -> Item | None:
        with self._lock:
            item = self._table(table).get((pk, sk))
            return copy.copy(item) if item is not None else None

    def _write(self, table: str, item: Item) -> None:
        """Store the item; the caller holds the lock."""
        rows = self._table(table)
        key = _key(item)
        if key not in rows:
            keys = self._sort_keys.get((table, key[0]))
            if keys is not None:
                bisect.insort(keys, key[1])
            self._created(table, item)
        rows[key] = copy.copy(item)

    def _created(self, table: str, item: Item) -> None:
        """Called, under the lock, when a write creates an item (not when it overwrites one)."""

    def put_new(self, table: str, item: Item) -> Item | None:
        with self._lock:
            current = self._table(table).get(_key(item))
            if current is not None:
                return copy.copy(current)
            self._write(table, item)
            return None

    def put(self, table: str, item: Item) -> None:
        with self._lock:
            self._write(table, item)

    def query(self, table: str, pk: str, sk_prefix: str = "") -> list[Item]:
        with self._lock:
            rows = self._table(table)
            keys = self._sort_keys.get((table, pk))
            if keys is None:
                keys = self._sort_keys[(table, pk)] = sorted(sk for p, sk in rows if p == pk)
            found = []
            for index in range(bisect.bisect_left(keys, sk_prefix), len(keys)):
                if not keys[index].startswith(sk_prefix):
                    break
                found.append(copy.copy(rows[(pk, keys[index])]))
        return found

    def transact(self, writes: Sequence[Write]) -> None:
        keys = transaction_keys(writes)
        with self._lock:
            for index, (write, (table, pk, sk)) in enumerate(zip(writes, keys, strict=True)):
                current = self._table(table).get((pk, sk))
                if not condition_holds(write, current):
                    raise ConditionFailedError(index)
            for write in writes:
                if not isinstance(write, Expect):
                    self._write(write.table, write.item)

    def scan(self, table: str) -> Iterator[Item]:
        with self._lock:
            items = [copy.copy(item) for item in self._table(table).values()]
        return iter(items)


def _key(item: Item) -> tuple[str, str]:
    return str(item["pk"]), str(item["sk"])


@dataclass
class Message:
    topic: str
    key: bytes
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)


class MemoryPublisher:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def publish(
        self, topic: str, key: bytes, value: bytes, headers: Mapping[str, bytes] | None = None
    ) -> None:
        self.messages.append(Message(topic, key, value, dict(headers or {})))

    def flush(self) -> None:
        return None

    def on(self, topic: str) -> list[Message]:
        return [message for message in self.messages if message.topic == topic]


@dataclass(frozen=True)
class StreamEntry:
    table: str
    sequence: str
    item: Item


class StreamingMemoryStore(MemoryStore):
    """A MemoryStore whose tables with streams log each item they create, as DynamoDB Streams
    shows a NEW_IMAGE INSERT record: once per created item, in commit order."""

    def __init__(self, tables: Sequence[str], streamed: Sequence[str]) -> None:
        super().__init__(tables)
        self.streams: dict[str, list[StreamEntry]] = {name: [] for name in streamed}
        self._sequence = 0

    def _created(self, table: str, item: Item) -> None:
        if table in self.streams:
            self._sequence += 1
            self.streams[table].append(StreamEntry(table, f"{self._sequence:021d}", copy.copy(item)))


class MemoryExchange:
    """The statement exchange in memory (``meterline.exchange``)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, body: bytes) -> bool:
        with self._lock:
            standing = self.objects.get(key)
            if standing is None:
                self.objects[key] = bytes(body)
                return True
        if standing != body:
            raise ExchangeConflictError(key)
        return False

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self.objects.get(key)

    def keys(self, prefix: str, after: str = "") -> list[str]:
        with self._lock:
            return sorted(key for key in self.objects if key.startswith(prefix) and key > after)
