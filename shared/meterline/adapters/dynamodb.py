"""The store port on DynamoDB, through boto3's low-level client so that every type is ours to choose:
``str`` → S, ``int`` → N (its exact digits, never a float), ``bytes`` → B, ``bool`` → BOOL.

Every read is strongly consistent. The adapter also counts the on-demand write request units it
issues (``write_units``), for the cost benchmark.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)

from meterline.ports import (
    ConditionFailedError,
    Expect,
    Item,
    PutIf,
    PutNew,
    RetriableStoreError,
    Scalar,
    StoreError,
    Write,
    transaction_keys,
)
from meterline.topology import TABLES, Table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        ConditionCheckTypeDef,
        CreateTableInputTypeDef,
        PutTypeDef,
        TransactWriteItemTypeDef,
    )

ABSENT = "attribute_not_exists(pk)"
RETRIABLE_CODES = frozenset(
    {
        # error codes of a whole request
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
        # cancellation reasons of one write inside a transaction
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
    }
)
NETWORK_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)
PUT_NEW_ATTEMPTS = 3


def physical_name(prefix: str, table: Table) -> str:
    """The DynamoDB table name of a topology table in a cell whose tables share ``prefix``."""
    return f"{prefix}{table.name}"


class DynamoStore:
    def __init__(
        self,
        client: DynamoDBClient,
        table_names: Mapping[str, str] | str,
        meter: WriteMeter | None = None,
    ) -> None:
        """``table_names`` maps each logical table to its DynamoDB name, or is the prefix of every
        topology table's name (see ``physical_name``)."""
        self._client = client
        if isinstance(table_names, str):
            self._names = {table.name: physical_name(table_names, table) for table in TABLES}
        else:
            self._names = dict(table_names)
        self.meter = meter if meter is not None else WriteMeter()

    @property
    def write_units(self) -> int:
        return self.meter.units

    def _name(self, table: str) -> str:
        try:
            return self._names[table]
        except KeyError:
            raise StoreError(f"no table {table!r}") from None

    def get(self, table: str, pk: str, sk: str) -> Item | None:
        name = self._name(table)
        with _mapped_errors(f"GetItem on {name}"):
            found = self._client.get_item(TableName=name, Key=_key(pk, sk), ConsistentRead=True)
        stored = found.get("Item")
        return decode_item(stored) if stored is not None else None

    def put_new(self, table: str, item: Item) -> Item | None:
        name = self._name(table)
        encoded = encode_item(item)
        for _ in range(PUT_NEW_ATTEMPTS):
            self.meter.record(write_request_units(item, transactional=False))
            try:
                with _mapped_errors(f"PutItem on {name}", passing="ConditionalCheckFailedException"):
                    self._client.put_item(
                        TableName=name,
                        Item=encoded,
                        ConditionExpression=ABSENT,
                        ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    )
                return None
            except ClientError as error:
                old = cast(Mapping[str, Any], error.response).get("Item")
            stored = decode_item(old) if old else self.get(table, str(item["pk"]), str(item["sk"]))
            if stored is not None:
                return stored
            # The item that failed the condition is gone already (expired by TTL): try again.
        raise RetriableStoreError(f"PutItem on {name}: the existing item kept changing")

    def put(self, table: str, item: Item) -> None:
        name = self._name(table)
        encoded = encode_item(item)
        self.meter.record(write_request_units(item, transactional=False))
        with _mapped_errors(f"PutItem on {name}"):
            self._client.put_item(TableName=name, Item=encoded)

    def query(self, table: str, pk: str, sk_prefix: str = "") -> list[Item]:
        name = self._name(table)
        condition = "pk = :pk AND begins_with(sk, :prefix)" if sk_prefix else "pk = :pk"
        values: dict[str, AttributeValueTypeDef] = {":pk": {"S": pk}}
        if sk_prefix:
            values[":prefix"] = {"S": sk_prefix}
        pages = self._client.get_paginator("query").paginate(
            TableName=name,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
        )
        with _mapped_errors(f"Query on {name}"):
            return [decode_item(item) for page in pages for item in page["Items"]]

    def transact(self, writes: Sequence[Write]) -> None:
        transaction_keys(writes)  # refuses a transaction the port does not allow
        if not writes:
            return
        actions = [self._action(write) for write in writes]
        self.meter.record(sum(_transaction_units(write) for write in writes))
        try:
            with _mapped_errors("TransactWriteItems", passing="TransactionCanceledException"):
                self._client.transact_write_items(TransactItems=actions)
        except ClientError as error:
            raise _transaction_error(error) from error

    def scan(self, table: str) -> Iterator[Item]:
        return self._scan(self._name(table))  # an unknown table fails here, not at the first item

    def _scan(self, name: str) -> Iterator[Item]:
        pages = self._client.get_paginator("scan").paginate(TableName=name, ConsistentRead=True)
        with _mapped_errors(f"Scan on {name}"):
            for page in pages:
                yield from (decode_item(item) for item in page["Items"])

    def _action(self, write: Write) -> TransactWriteItemTypeDef:
        name = self._name(write.table)
        if isinstance(write, Expect):
            expression, names, values = _condition(write.attribute, write.expected)
            check: ConditionCheckTypeDef = {
                "TableName": name,
                "Key": _key(write.pk, write.sk),
                "ConditionExpression": expression,
                "ExpressionAttributeNames": names,
            }
            if values:
                check["ExpressionAttributeValues"] = values
            return {"ConditionCheck": check}
        put: PutTypeDef = {"TableName": name, "Item": encode_item(write.item)}
        if isinstance(write, PutNew):
            put["ConditionExpression"] = ABSENT
        elif isinstance(write, PutIf):
            expression, names, values = _condition(write.attribute, write.expected)
            put["ConditionExpression"] = expression
            put["ExpressionAttributeNames"] = names
            if values:
                put["ExpressionAttributeValues"] = values
        return {"Put": put}


def _condition(
    attribute: str, expected: Scalar | None
) -> tuple[str, dict[str, str], dict[str, AttributeValueTypeDef]]:
    """The condition that ``attribute`` equals ``expected``, as expression, names and values.
    ``attribute_not_exists`` holds on a missing item too, as ``expected=None`` means in the port.
    DynamoDB's ``=`` is false across types already; the explicit ``attribute_type`` makes moto
    (which finds BOOL true equal to N 1) keep to that too."""
    names = {"#a": attribute}
    if expected is None:
        return "attribute_not_exists(#a)", names, {}
    value = encode_value(attribute, expected)
    return (
        "#a = :expected AND attribute_type(#a, :type)",
        names,
        {":expected": value, ":type": {"S": next(iter(value))}},
    )


def _key(pk: str, sk: str) -> dict[str, AttributeValueTypeDef]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def encode_value(name: str, value: Scalar) -> AttributeValueTypeDef:
    # bool first: it is an int to Python.
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes):
        return {"B": value}
    raise StoreError(f"attribute {name!r}: {type(value).__name__} is not a str, int, bytes or bool")


def encode_item(item: Item) -> dict[str, AttributeValueTypeDef]:
    return {name: encode_value(name, value) for name, value in item.items()}


def decode_item(item: Mapping[str, AttributeValueTypeDef]) -> Item:
    return {name: _decode_value(name, value) for name, value in item.items()}


def _decode_value(name: str, value: AttributeValueTypeDef) -> Scalar:
    if "S" in value:
        return value["S"]
    if "N" in value:
        try:
            return int(value["N"])
        except ValueError:
            raise StoreError(f"attribute {name!r}: stored number {value['N']} is not whole") from None
    if "B" in value:
        return value["B"]
    if "BOOL" in value:
        return value["BOOL"]
    raise StoreError(f"attribute {name!r}: stored type {next(iter(value), '?')} is not S, N, B or BOOL")


@contextmanager
def _mapped_errors(doing: str, passing: str = "") -> Iterator[None]:
    """Turn boto errors into store errors; a ClientError with code ``passing`` is left to the caller."""
    try:
        yield
    except ClientError as error:
        if passing and _code(error) == passing:
            raise
        raise _store_error(error, doing) from error
    except NETWORK_ERRORS as error:
        raise RetriableStoreError(f"{doing}: {error}") from error
    except ParamValidationError as error:
        raise StoreError(f"{doing}: {error}") from error


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "Unknown")


def _store_error(error: ClientError, doing: str) -> StoreError:
    code = _code(error)
    message = error.response.get("Error", {}).get("Message", "")
    kind = RetriableStoreError if code in RETRIABLE_CODES else StoreError
    return kind(f"{doing}: {code}: {message}")


def _transaction_error(error: ClientError) -> StoreError:
    if _code(error) != "TransactionCanceledException":
        return _store_error(error, "TransactWriteItems")
    codes = [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]
    if "ConditionalCheckFailed" in codes:
        return ConditionFailedError(codes.index("ConditionalCheckFailed"))
    failed = [code for code in codes if code != "None"]
    kind = RetriableStoreError if failed and all(code in RETRIABLE_CODES for code in failed) else StoreError
    return kind(f"TransactWriteItems cancelled: {', '.join(failed) or 'no reason given'}")


class WriteMeter:
    """The write request units issued, as AWS bills them on demand: per write, its item size
    rounded up to the next KB, twice inside a transaction. A write is counted when sent, whether
    its condition holds or not.

    It counts the items sent, so it is a lower bound where AWS bills more: an overwrite costs the
    larger of the old and the new item, and a transaction's ConditionCheck the stored item's size
    (counted here from its key alone, so as 1 KB)."""

    def __init__(self) -> None:
        self.units = 0
        self._lock = threading.Lock()

    def record(self, units: int) -> None:
        with self._lock:
            self.units += units


KB = 1024


def write_request_units(item: Item, *, transactional: bool) -> int:
    units = -(-item_size(item) // KB)
    return 2 * units if transactional else units


def _transaction_units(write: Write) -> int:
    if isinstance(write, Expect):
        return write_request_units({"pk": write.pk, "sk": write.sk}, transactional=True)
    return write_request_units(write.item, transactional=True)


def item_size(item: Item) -> int:
    """Bytes of the item by AWS's rules: each attribute name's UTF-8 length plus its value's size."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def value_size(value: Scalar) -> int:
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return _number_size(value)
    if isinstance(value, str):
        return len(value.encode())
    return len(value)


def _number_size(value: int) -> int:
    """One byte per two significant digits (leading and trailing zeros trimmed) plus one, as AWS
    documents; a negative number takes one byte more, as measured by the community's capacity
    calculators (github.com/zaccharles/dynamodb-calculator)."""
    significant = str(abs(value)).strip("0")
    return -(-len(significant) // 2) + 1 + (1 if value < 0 else 0)


def create_tables(client: DynamoDBClient, prefix: str) -> dict[str, str]:
    """Create every topology table that does not exist yet (on demand, pk/sk strings, streams and
    TTL as the topology says); return the logical → DynamoDB names."""
    names: dict[str, str] = {}
    for table in TABLES:
        name = physical_name(prefix, table)
        names[table.name] = name
        try:
            with _mapped_errors(f"CreateTable {name}", passing="ResourceInUseException"):
                _create_table(client, name, table)
        except ClientError:
            continue  # it exists already
    return names


def _create_table(client: DynamoDBClient, name: str, table: Table) -> None:
    request: CreateTableInputTypeDef = {
        "TableName": name,
        "AttributeDefinitions": [
            {"AttributeName": table.partition_key, "AttributeType": "S"},
            {"AttributeName": table.sort_key, "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": table.partition_key, "KeyType": "HASH"},
            {"AttributeName": table.sort_key, "KeyType": "RANGE"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if table.stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": table.stream.value}
    client.create_table(**request)
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
