"""The store port on Cloud Firestore (native mode), through google-cloud-firestore.

Layout: one collection per table (``<prefix><table>``); one document per item, its id the
escaped ``pk`` and ``sk`` joined by ``%%``, its fields the item itself (``pk`` and ``sk``
included, unescaped). Firestore keeps every scalar type of the port apart: int64, boolean,
bytes and string.

``query`` filters ``pk ==`` and an ``sk`` range and orders by ``sk``, all on the server:
Firestore orders strings by their UTF-8 bytes, which is code point order, as the port asks. In
a real database this query needs the composite index ``firestore_layout.QUERY_INDEX`` on each
collection it queries (infra creates it); the emulator does without.

A transaction reads every conditioned document first, then writes, inside a Firestore
transaction (which the client retries on contention); a transaction still aborted after that
is a RetriableStoreError.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from google.api_core import exceptions as api
from google.api_core.exceptions import AlreadyExists, GoogleAPICallError, RetryError
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from meterline.adapters.firestore_layout import collection_name
from meterline.ports import (
    ConditionFailedError,
    Expect,
    Item,
    Put,
    RetriableStoreError,
    Scalar,
    StoreError,
    Write,
    condition_holds,
    transaction_keys,
)
from meterline.topology import TABLES

TABLE_NAMES = tuple(table.name for table in TABLES)

SEPARATOR = "%%"
"""Joins pk and sk in a document id: an escaped part holds '%' only as the start of '%XX'."""
RETRIABLE = (
    api.Aborted,
    api.DeadlineExceeded,
    api.ServiceUnavailable,
    api.TooManyRequests,
    api.ResourceExhausted,
    api.InternalServerError,
    RetryError,
)
PUT_NEW_ATTEMPTS = 3


def escape_id_part(part: str, *, leading: bool) -> str:
    """``part`` without '/' (which Firestore reads as a path), reversibly: '%' and '/' become
    '%25' and '%2F'; a leading '_' becomes '%5F' so that no id matches Firestore's reserved ``__.*__``."""
    escaped = part.replace("%", "%25").replace("/", "%2F")
    if leading and escaped.startswith("_"):
        escaped = "%5F" + escaped[1:]
    return escaped


def document_id(pk: str, sk: str) -> str:
    """Never '.' or '..' (it holds the separator) nor ``__.*__`` (it never starts with '_')."""
    return escape_id_part(pk, leading=True) + SEPARATOR + escape_id_part(sk, leading=False)


def prefix_end(prefix: str) -> str | None:
    """The least string above every string starting with ``prefix``, in code point order
    (None: there is none, or the prefix is empty)."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop()) + 1
        if 0xD800 <= last <= 0xDFFF:
            last = 0xE000  # surrogates cannot be encoded as UTF-8
        if last <= 0x10FFFF:
            return "".join(chars) + chr(last)
    return None


def firestore_client(project: str | None, database: str, emulator_host: str = "") -> firestore.Client:
    """A client of the database; with ``emulator_host``, of Google's emulator there. The library
    reads the emulator's address only from FIRESTORE_EMULATOR_HOST when a client is made, and keeps
    it as ``_emulator_host``; setting that on a client made without credentials does the same for
    this client alone, with the process's environment left as it is."""
    if not emulator_host:
        return firestore.Client(project=project, database=database)
    from google.auth.credentials import AnonymousCredentials

    client = firestore.Client(
        project=project or "meterline-local",
        database=database,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
    )
    client._emulator_host = emulator_host
    return client


class FirestoreStore:
    def __init__(
        self,
        client: firestore.Client,
        collection_prefix: str,
        tables: Iterable[str] = TABLE_NAMES,
    ) -> None:
        self._client = client
        self._collections = {name: collection_name(collection_prefix, name) for name in tables}

    def _collection(self, table: str) -> firestore.CollectionReference:
        try:
            return self._client.collection(self._collections[table])
        except KeyError:
            raise StoreError(f"no table {table!r}") from None

    def _document(self, table: str, pk: str, sk: str) -> firestore.DocumentReference:
        # typed as the base class by some releases; a sync collection makes sync documents
        return cast(firestore.DocumentReference, self._collection(table).document(document_id(pk, sk)))

    def get(self, table: str, pk: str, sk: str) -> Item | None:
        document = self._document(table, pk, sk)
        with _mapped_errors(f"get {document.path}"):
            snapshot = document.get()
        return _decode(snapshot.to_dict(), document.path) if snapshot.exists else None

    def put_new(self, table: str, item: Item) -> Item | None:
        pk, sk = _keys(item)
        document = self._document(table, pk, sk)
        fields = _encode(item)
        for _ in range(PUT_NEW_ATTEMPTS):
            try:
                with _mapped_errors(f"create {document.path}", passing=AlreadyExists):
                    document.create(fields)
                return None
            except AlreadyExists:
                stored = self.get(table, pk, sk)
            if stored is not None:
                return stored
            # deleted between the create and the read: try again
        raise RetriableStoreError(f"create {document.path}: the existing document kept changing")

    def put(self, table: str, item: Item) -> None:
        pk, sk = _keys(item)
        document = self._document(table, pk, sk)
        fields = _encode(item)
        with _mapped_errors(f"set {document.path}"):
            document.set(fields)

    def query(self, table: str, pk: str, sk_prefix: str = "") -> list[Item]:
        collection = self._collection(table)
        query = collection.where(filter=FieldFilter("pk", "==", pk))
        if sk_prefix:
            query = query.where(filter=FieldFilter("sk", ">=", sk_prefix))
            end = prefix_end(sk_prefix)
            if end is not None:
                query = query.where(filter=FieldFilter("sk", "<", end))
        query = query.order_by("sk")
        with _mapped_errors(f"query {collection.id} pk={pk!r} sk^={sk_prefix!r}"):
            return [_decode(snapshot.to_dict(), snapshot.reference.path) for snapshot in query.stream()]

    def transact(self, writes: Sequence[Write]) -> None:
        transaction_keys(writes)  # refuses a transaction the port does not allow
        references = [self._document(write.table, *_write_keys(write)) for write in writes]
        if not writes:
            return
        encoded = [None if isinstance(write, Expect) else _encode(write.item) for write in writes]
        checked = [
            reference for write, reference in zip(writes, references, strict=True) if _conditioned(write)
        ]

        @firestore.transactional
        def apply(transaction: firestore.Transaction) -> None:
            stored: dict[str, Item | None] = {reference.path: None for reference in checked}
            if checked:
                for snapshot in transaction.get_all(checked):
                    if snapshot.exists:
                        stored[snapshot.reference.path] = _decode(snapshot.to_dict(), snapshot.reference.path)
            for index, (write, reference) in enumerate(zip(writes, references, strict=True)):
                if _conditioned(write) and not condition_holds(write, stored[reference.path]):
                    raise ConditionFailedError(index)
            for reference, fields in zip(references, encoded, strict=True):
                if fields is not None:
                    transaction.set(reference, fields)

        with _mapped_errors("transaction"):
            apply(self._client.transaction())

    def scan(self, table: str) -> Iterator[Item]:
        return self._scan(self._collection(table))  # an unknown table fails here, not at the first item

    def _scan(self, collection: firestore.CollectionReference) -> Iterator[Item]:
        with _mapped_errors(f"scan {collection.id}"):
            for snapshot in collection.stream():
                yield _decode(snapshot.to_dict(), snapshot.reference.path)


def _keys(item: Item) -> tuple[str, str]:
    pk, sk = item.get("pk"), item.get("sk")
    if not isinstance(pk, str) or not isinstance(sk, str):
        raise StoreError(f"item keys pk={pk!r}, sk={sk!r}: both must be strings")
    return pk, sk


def _write_keys(write: Write) -> tuple[str, str]:
    return (write.pk, write.sk) if isinstance(write, Expect) else _keys(write.item)


def _conditioned(write: Write) -> bool:
    return not isinstance(write, Put)


def _encode(item: Item) -> dict[str, Scalar]:
    for name, value in item.items():
        if not isinstance(value, str | int | bytes):  # bool is an int
            raise StoreError(f"attribute {name!r}: {type(value).__name__} is not a str, int, bytes or bool")
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            raise StoreError(f"attribute {name!r}: {value} does not fit in 64 bits")
    _keys(item)
    return dict(item)


def _decode(fields: dict[str, Any] | None, path: str) -> Item:
    item: Item = {}
    for name, value in (fields or {}).items():
        if not isinstance(value, str | int | bytes):
            raise StoreError(
                f"{path}: field {name!r} holds a {type(value).__name__}, not a str, int, bytes or bool"
            )
        item[name] = value
    return item


@contextmanager
def _mapped_errors(doing: str, passing: type[Exception] | None = None) -> Iterator[None]:
    try:
        yield
    except GoogleAPICallError as error:
        if passing is not None and isinstance(error, passing):
            raise
        kind = RetriableStoreError if isinstance(error, RETRIABLE) else StoreError
        raise kind(f"{doing}: {type(error).__name__}: {error.message}") from error
    except RetryError as error:
        raise RetriableStoreError(f"{doing}: {error}") from error
    except ValueError as error:  # a transaction out of attempts (its cause: Aborted), an id refused
        kind = RetriableStoreError if isinstance(error.__cause__, RETRIABLE) else StoreError
        raise kind(f"{doing}: {error}") from error
