"""The store port on Azure Table Storage (or Cosmos DB's Table API), through azure-data-tables.

Layout: one table per ledger table (``<prefix><table>``, letters and digits only); an item is an
entity with PartitionKey = escaped ``pk``, RowKey = escaped ``sk`` and its other attributes as
properties: ints as Edm.Int64 (always, so that a stored value's type never depends on its
size), bytes as Edm.Binary, bools as Edm.Boolean, strings as Edm.String. A value above Azure's
64 KiB per property (a packed partial state can be 350 KB) is stored in numbered parts, each a
property of its own, and joined again on reading; the entity's own limit, 1 MiB, stays.

Keys are escaped to printable ASCII: '%', the characters Azure forbids in keys ('#', '/', '\\',
'?', control characters) and every non-ASCII character (as its UTF-8 bytes) become '%XX'. The
escaping keeps prefixes (``sk`` starts with p exactly when its escaped form starts with p's), so
``query`` asks the service for a RowKey range, but not order: results are sorted by ``sk`` here.

Transactions are entity group transactions, which Azure runs on ONE table and ONE partition
only: exactly what the store port offers on every adapter (``ports.transaction_keys`` refuses
more, before anything is read or written). Within a partition, conditions are checked
optimistically: each conditioned entity is read, the condition evaluated here, and the write sent
conditional on the ETag read (or as a create where there was no entity), so a concurrent change
fails the whole batch, which is then evaluated again. An ``Expect`` of an absent item cannot be
checked without a write: it creates a placeholder entity (``meterline_absent``) that reads as
absent everywhere and that a later create or put replaces.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, unquote

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableClient,
    TableServiceClient,
    TableTransactionError,
    UpdateMode,
)

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
    write_key,
)
from meterline.topology import TABLES

TABLE_NAMES = tuple(table.name for table in TABLES)

SAFE_KEY_CHARACTERS = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "%#/\\?")
OURS = "meterline_"
"""Properties the adapter keeps for itself start with this."""
PLACEHOLDER = f"{OURS}absent"
PART = f"{OURS}part"
"""A value above Azure's 64 KiB per property is stored in parts named ``meterline_part<NNN>_<name>``."""
MAX_PROPERTY_BYTES = 64 * 1024
TEXT_PART_CHARACTERS = MAX_PROPERTY_BYTES // 4  # Azure counts UTF-16: at most 2 units of 2 bytes each
RESERVED = frozenset({"PartitionKey", "RowKey", "Timestamp"})
TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
RETRIABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RACED_STATUS = frozenset({409, 412})
"""A batch built from fresh reads fails with these only when another writer got in between."""
ATTEMPTS = 8
BACKOFF_CAP_SECONDS = 0.5


def _backoff(attempt: int) -> None:
    """Full jitter before another attempt: writers racing on one partition (every aggregate batch of
    a period checks the same window fence, and each check changes the fence's ETag) spread out
    instead of colliding again at once, which under load used to exhaust the attempts."""
    time.sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, 0.01 * 2**attempt)))


Entity = dict[str, Any]


def escape_key(key: str) -> str:
    try:
        return quote(key, safe=SAFE_KEY_CHARACTERS, errors="strict")
    except UnicodeEncodeError:
        raise StoreError(f"key {key!r} is not valid Unicode text") from None


def unescape_key(escaped: str) -> str:
    return unquote(escaped, errors="strict")


class TablesStore:
    def __init__(
        self,
        service_client: TableServiceClient,
        table_prefix: str,
        tables: Iterable[str] = TABLE_NAMES,
    ) -> None:
        self._service = service_client
        self._names = {name: table_name(table_prefix, name) for name in tables}

    def _table(self, table: str) -> TableClient:
        try:
            return self._service.get_table_client(self._names[table])
        except KeyError:
            raise StoreError(f"no table {table!r}") from None

    def get(self, table: str, pk: str, sk: str) -> Item | None:
        item, _ = self._read(self._table(table), pk, sk)
        return item

    def put_new(self, table: str, item: Item) -> Item | None:
        client = self._table(table)
        entity = encode_entity(item)
        doing = f"create {client.table_name} {entity['PartitionKey']}/{entity['RowKey']}"
        for attempt in range(ATTEMPTS):
            if attempt:
                _backoff(attempt)
            try:
                with _mapped_errors(doing, passing=(ResourceExistsError,)):
                    client.create_entity(entity)
                return None
            except ResourceExistsError:
                stored, etag = self._read(client, str(item["pk"]), str(item["sk"]))
            if stored is not None:
                return stored
            if etag is None:
                continue  # deleted since: create again
            try:  # a placeholder stands there: replace it unless it changed meanwhile
                with _mapped_errors(doing, passing=(HttpResponseError,)):
                    client.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                return None
            except HttpResponseError as error:
                if error.status_code not in RACED_STATUS:
                    raise _store_error(error, doing) from error
        raise RetriableStoreError(f"{doing}: the existing entity kept changing")

    def put(self, table: str, item: Item) -> None:
        client = self._table(table)
        entity = encode_entity(item)
        with _mapped_errors(f"upsert {client.table_name} {entity['PartitionKey']}/{entity['RowKey']}"):
            client.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def query(self, table: str, pk: str, sk_prefix: str = "") -> list[Item]:
        client = self._table(table)
        condition = "PartitionKey eq @pk"
        parameters = {"pk": escape_key(pk)}
        if sk_prefix:
            low = escape_key(sk_prefix)
            # escaped keys are ASCII below '\x7f': the last character's successor bounds the prefix
            parameters |= {"low": low, "high": low[:-1] + chr(ord(low[-1]) + 1)}
            condition += " and RowKey ge @low and RowKey lt @high"
        with _mapped_errors(f"query {client.table_name} pk={pk!r} sk^={sk_prefix!r}"):
            entities = list(client.query_entities(condition, parameters=parameters))
        items = [decode_entity(entity) for entity in entities if PLACEHOLDER not in entity]
        return sorted(items, key=lambda item: str(item["sk"]))

    def transact(self, writes: Sequence[Write]) -> None:
        transaction_keys(writes)  # one partition, as an entity group transaction needs
        if not writes:
            return
        client = self._table(writes[0].table)
        for attempt in range(ATTEMPTS):
            if attempt:
                _backoff(attempt)
            operations = [self._operation(client, index, write) for index, write in enumerate(writes)]
            try:
                with _mapped_errors(f"transaction on {client.table_name}", passing=(TableTransactionError,)):
                    client.submit_transaction(operations)
                return
            except TableTransactionError as error:
                if error.status_code not in RACED_STATUS:
                    raise _store_error(error, f"transaction on {client.table_name}") from error
        raise RetriableStoreError(f"transaction on {client.table_name}: its entities kept changing")

    def scan(self, table: str) -> Iterator[Item]:
        return self._scan(self._table(table))  # an unknown table fails here, not at the first item

    def _scan(self, client: TableClient) -> Iterator[Item]:
        with _mapped_errors(f"scan {client.table_name}"):
            for entity in client.list_entities():
                if PLACEHOLDER not in entity:
                    yield decode_entity(entity)

    def _read(self, client: TableClient, pk: str, sk: str) -> tuple[Item | None, str | None]:
        """The stored item (None when absent or a placeholder) and the entity's ETag (None when absent)."""
        partition, row = escape_key(pk), escape_key(sk)
        try:
            with _mapped_errors(
                f"get {client.table_name} {partition}/{row}", passing=(ResourceNotFoundError,)
            ):
                entity = client.get_entity(partition, row)
        except ResourceNotFoundError as error:
            if getattr(error, "error_code", None) == "TableNotFound":
                raise StoreError(f"get {client.table_name}: no such table") from error
            return None, None
        etag = str(entity.metadata["etag"])
        return (None if PLACEHOLDER in entity else decode_entity(entity)), etag

    def _operation(self, client: TableClient, index: int, write: Write) -> tuple[Any, ...]:
        if isinstance(write, Put):
            return ("upsert", encode_entity(write.item), {"mode": UpdateMode.REPLACE})
        stored, etag = self._read(client, *write_key(write)[1:])
        if not condition_holds(write, stored):
            raise ConditionFailedError(index)
        if isinstance(write, Expect):
            key = {"PartitionKey": escape_key(write.pk), "RowKey": escape_key(write.sk)}
            if etag is None:
                return ("create", {**key, PLACEHOLDER: True})
            # an empty merge changes no property: it only makes the batch depend on the ETag
            return ("update", key, _unchanged_since(etag, UpdateMode.MERGE))
        entity = encode_entity(write.item)
        if etag is None:
            return ("create", entity)
        return ("update", entity, _unchanged_since(etag, UpdateMode.REPLACE))


def table_name(prefix: str, table: str) -> str:
    name = f"{prefix}{table}"
    if not TABLE_NAME.fullmatch(name):
        raise StoreError(f"table name {name!r}: Azure wants 3-63 letters and digits, starting with a letter")
    return name


def create_tables(service_client: TableServiceClient, prefix: str) -> dict[str, str]:
    """Create every topology table that does not exist yet; return the logical → Azure names."""
    names = {table.name: table_name(prefix, table.name) for table in TABLES}
    for name in names.values():
        with _mapped_errors(f"create table {name}"):
            service_client.create_table_if_not_exists(name)
    return names


def _unchanged_since(etag: str, mode: UpdateMode) -> dict[str, Any]:
    return {"mode": mode, "etag": etag, "match_condition": MatchConditions.IfNotModified}


def encode_entity(item: Item) -> Entity:
    pk, sk = item.get("pk"), item.get("sk")
    if not isinstance(pk, str) or not isinstance(sk, str):
        raise StoreError(f"item keys pk={pk!r}, sk={sk!r}: both must be strings")
    entity: Entity = {"PartitionKey": escape_key(pk), "RowKey": escape_key(sk)}
    for name, value in item.items():
        if name in ("pk", "sk"):
            continue
        if name in RESERVED or name.startswith(("odata.", OURS)):
            raise StoreError(f"attribute {name!r}: the name is reserved in Azure Tables")
        entity.update(_parts(name, _encode_value(name, value)))
    return entity


def _parts(name: str, value: Any) -> dict[str, Any]:
    """The property, or its parts when the value is above Azure's limit for one property."""
    if isinstance(value, bytes) and len(value) > MAX_PROPERTY_BYTES:
        size = MAX_PROPERTY_BYTES
    elif isinstance(value, str) and len(value.encode("utf-16-le")) > MAX_PROPERTY_BYTES:
        size = TEXT_PART_CHARACTERS
    else:
        return {name: value}
    return {
        f"{PART}{index:03d}_{name}": value[start : start + size]
        for index, start in enumerate(range(0, len(value), size))
    }


def _encode_value(name: str, value: Scalar) -> Any:
    if isinstance(value, bool | str | bytes):  # bool before int: it is an int to Python
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise StoreError(f"attribute {name!r}: {value} does not fit in 64 bits")
        return EntityProperty(value, EdmType.INT64)
    raise StoreError(f"attribute {name!r}: {type(value).__name__} is not a str, int, bytes or bool")


def decode_entity(entity: Mapping[str, Any]) -> Item:
    item: Item = {
        "pk": unescape_key(str(entity["PartitionKey"])),
        "sk": unescape_key(str(entity["RowKey"])),
    }
    parts: dict[str, list[tuple[str, Any]]] = {}
    for name, value in entity.items():
        if name in ("PartitionKey", "RowKey"):
            continue
        if name.startswith(PART):
            index, _, whole = name.removeprefix(PART).partition("_")
            parts.setdefault(whole, []).append((index, value))
            continue
        if isinstance(value, EntityProperty) and value.edm_type in (EdmType.INT64, EdmType.INT32):
            value = int(value.value)
        if not isinstance(value, str | int | bytes):  # bool is an int
            raise StoreError(
                f"entity {entity['PartitionKey']}/{entity['RowKey']}: property {name!r} holds a "
                f"{type(value).__name__}, not a str, int, bytes or bool"
            )
        item[name] = value
    for name, pieces in parts.items():
        values = [value for _, value in sorted(pieces)]
        item[name] = b"".join(values) if isinstance(values[0], bytes) else "".join(values)
    return item


@contextmanager
def _mapped_errors(doing: str, passing: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    try:
        yield
    except AzureError as error:
        if isinstance(error, passing):
            raise
        raise _store_error(error, doing) from error


def _store_error(error: AzureError, doing: str) -> StoreError:
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return RetriableStoreError(f"{doing}: {error.message}")
    status = error.status_code if isinstance(error, HttpResponseError) else None
    code = getattr(error, "error_code", None) or status or type(error).__name__
    code = getattr(code, "value", code)  # TableErrorCode.TABLE_NOT_FOUND → TableNotFound
    kind = RetriableStoreError if status in RETRIABLE_STATUS else StoreError
    first_line = str(error.message).splitlines()[0] if error.message else ""
    return kind(f"{doing}: {code}: {first_line}")
