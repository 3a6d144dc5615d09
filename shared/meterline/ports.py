"""The store port every ledger stands on, the publisher port for topics, and the clock.

A store offers a few primitives over tables of items keyed by two strings (``pk``, ``sk``):
read, conditional create, overwrite, prefix query and an all-or-nothing transaction within one
partition (one table, one ``pk``: what Azure Tables can commit, and so all the port promises). The
jobs (``meterline.pipeline``) hold all the billing logic on top of them; an adapter (DynamoDB,
Firestore, Azure Tables, in-memory) only does I/O. One contract suite
(``tests/contract/store_contract.py``, run by ``test_store_<adapter>.py``) runs against every adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

Scalar = str | int | bytes | bool
Item = dict[str, Scalar]
"""An item: ``pk`` and ``sk`` (strings) plus scalar attributes. Integers are whole numbers that
fit in 64 bits; exact decimals are stored as their text."""


class StoreError(Exception):
    """A store call failed."""


class RetriableStoreError(StoreError):
    """Throttling, a timeout, a transaction that lost a race: the same call may succeed later."""


class ConditionFailedError(StoreError):
    """A transaction's condition did not hold; nothing was written."""

    def __init__(self, index: int, message: str = "") -> None:
        super().__init__(message or f"condition {index} of the transaction failed")
        self.index = index


@dataclass(frozen=True, slots=True)
class PutNew:
    """Create the item; the transaction fails if an item with its keys exists."""

    table: str
    item: Item


@dataclass(frozen=True, slots=True)
class Put:
    """Create or overwrite the item."""

    table: str
    item: Item


@dataclass(frozen=True, slots=True)
class PutIf:
    """Create or overwrite the item if the stored item's ``attribute`` equals ``expected``
    (``None``: if there is no stored item, or it lacks the attribute)."""

    table: str
    item: Item
    attribute: str
    expected: Scalar | None


@dataclass(frozen=True, slots=True)
class Expect:
    """Write nothing; the transaction fails unless the stored item's ``attribute`` equals
    ``expected`` (``None``: there is no such item, or it lacks the attribute)."""

    table: str
    pk: str
    sk: str
    attribute: str
    expected: Scalar | None


Write = PutNew | Put | PutIf | Expect

MAX_TRANSACTION_WRITES = 100
"""The smallest limit of the backing stores (DynamoDB and Azure Tables both take 100)."""


def write_key(write: Write) -> tuple[str, str, str]:
    """The table, ``pk`` and ``sk`` of the item a write touches."""
    if isinstance(write, Expect):
        return write.table, write.pk, write.sk
    return write.table, str(write.item.get("pk")), str(write.item.get("sk"))


def condition_holds(write: Write, stored: Item | None) -> bool:
    """Whether the write's condition holds on the stored item (None: there is none)."""
    if isinstance(write, PutNew):
        return stored is None
    if isinstance(write, Put):
        return True
    value = None if stored is None else stored.get(write.attribute)
    return value == write.expected and type(value) is type(write.expected)  # True is not 1


def transaction_keys(writes: Sequence[Write]) -> list[tuple[str, str, str]]:
    """Each write's ``write_key``, once the transaction is one the port allows: at most
    ``MAX_TRANSACTION_WRITES`` writes, each on a distinct item, all in one partition."""
    if len(writes) > MAX_TRANSACTION_WRITES:
        raise StoreError(f"a transaction takes at most {MAX_TRANSACTION_WRITES} writes, not {len(writes)}")
    keys = [write_key(write) for write in writes]
    if len(set(keys)) != len(keys):
        raise StoreError("a transaction may touch each item once")
    partitions = {(table, pk) for table, pk, _ in keys}
    if len(partitions) > 1:
        raise StoreError(
            f"a transaction writes one partition (one table, one pk), not {len(partitions)}: "
            + ", ".join(f"{table} {pk!r}" for table, pk in sorted(partitions))
        )
    return keys


class Store(Protocol):
    def get(self, table: str, pk: str, sk: str) -> Item | None:
        """Strongly consistent read of one item."""

    def put_new(self, table: str, item: Item) -> Item | None:
        """Create the item unless its keys exist; return the stored item when they do."""

    def put(self, table: str, item: Item) -> None: ...

    def query(self, table: str, pk: str, sk_prefix: str = "") -> list[Item]:
        """Every item under ``pk`` whose ``sk`` starts with the prefix, by ``sk`` ascending."""

    def transact(self, writes: Sequence[Write]) -> None:
        """All or nothing; at most ``MAX_TRANSACTION_WRITES`` writes, each on a distinct item, all
        in one partition (one table, one ``pk``). Raises ConditionFailedError naming the first
        write whose condition failed, and StoreError, before reading or writing anything, for a
        transaction the port does not allow."""

    def scan(self, table: str) -> Iterator[Item]:
        """Every item of the table (for reconciliation and tests, not hot paths)."""


class Publisher(Protocol):
    """Publishes to a topic; ``flush`` returns once every message so far is acknowledged."""

    def publish(
        self, topic: str, key: bytes, value: bytes, headers: Mapping[str, bytes] | None = None
    ) -> None: ...

    def flush(self) -> None: ...


Clock = Callable[[], datetime]
"""The time jobs act at (an aware datetime): the system's in a function, the driver's in the local
runtime and the tests. No job takes the time from a trigger's payload."""
