"""The store contract on DynamoDB (moto, in-process), then what is DynamoDB's own: table creation,
error mapping and the write request units the adapter counts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.core import models as moto_models

from meterline.adapters.dynamodb import DynamoStore, create_tables, item_size, write_request_units
from meterline.ports import (
    ConditionFailedError,
    Expect,
    Put,
    PutNew,
    RetriableStoreError,
    Store,
    StoreError,
)
from meterline.topology import TABLES
from tests.contract.store_contract import StoreContract, item

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

PREFIX = "test-"
REGION = "us-east-1"


# One session for the module: a client from it takes ~10 ms, a client from a fresh session ~150 ms.
SESSION = boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def client() -> DynamoDBClient:
    return SESSION.client("dynamodb")


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def dynamo(aws: None) -> DynamoStore:
    dynamodb = client()
    create_tables(dynamodb, PREFIX)
    return DynamoStore(dynamodb, PREFIX)


@pytest.fixture
def serialized_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies each conditional write atomically; in-process moto evaluates a condition and
    writes without a lock, so two racing threads can both pass it. Serializing moto's request handling
    models the service (one request at a time per item) and leaves the adapter's error mapping — what
    the racing-writers contract checks — as the thing under test."""
    stubber = moto_models.botocore_stubber
    unlocked = stubber.process_request
    lock = threading.Lock()

    def process_request(request: Any) -> Any:
        with lock:
            return unlocked(request)

    monkeypatch.setattr(stubber, "process_request", process_request)


class TestDynamoStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _moto(self, aws: None, serialized_moto: None) -> None:
        """Every test of the contract runs inside moto, one request at a time as DynamoDB applies them."""

    def make_store(self) -> Store:
        dynamodb = client()
        create_tables(dynamodb, PREFIX)
        return DynamoStore(dynamodb, PREFIX)


# --- tables --------------------------------------------------------------------------------------


def test_create_tables_makes_every_topology_table_with_its_streams_and_no_ttl(aws: None) -> None:
    # GIVEN an empty account WHEN the tables are created, twice (the second finds them all)
    dynamodb = client()
    names = create_tables(dynamodb, PREFIX)
    assert create_tables(dynamodb, PREFIX) == names

    # THEN each topology table exists on demand, keyed pk/sk strings, with its stream, and nothing expires
    assert names == {table.name: f"{PREFIX}{table.name}" for table in TABLES}
    for table in TABLES:
        described = dynamodb.describe_table(TableName=names[table.name])["Table"]
        assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert {(key["AttributeName"], key["KeyType"]) for key in described["KeySchema"]} == {
            ("pk", "HASH"),
            ("sk", "RANGE"),
        }
        assert {(a["AttributeName"], a["AttributeType"]) for a in described["AttributeDefinitions"]} == {
            ("pk", "S"),
            ("sk", "S"),
        }
        stream = described.get("StreamSpecification", {"StreamEnabled": False})
        assert stream.get("StreamViewType") == (table.stream.value if table.stream else None)
        ttl = dynamodb.describe_time_to_live(TableName=names[table.name])["TimeToLiveDescription"]
        assert ttl["TimeToLiveStatus"] == "DISABLED"


def test_a_store_on_explicit_table_names_uses_them(aws: None) -> None:
    # GIVEN tables created under one prefix, and a store given the names one by one
    dynamodb = client()
    names = create_tables(dynamodb, "cell-eu-")
    store = DynamoStore(dynamodb, names)

    # WHEN an item is put THEN it lands in the named DynamoDB table
    store.put("usage", item("t-1", "e-1"))
    assert dynamodb.get_item(TableName="cell-eu-usage", Key={"pk": {"S": "t-1"}, "sk": {"S": "e-1"}})["Item"]


def test_a_value_of_an_unsupported_type_is_a_one_line_store_error(dynamo: DynamoStore) -> None:
    with pytest.raises(StoreError, match=r"attribute 'price': float is not a str, int, bytes or bool"):
        dynamo.put("usage", {"pk": "t-1", "sk": "e-1", "price": 1.5})  # type: ignore[dict-item]


def test_a_stored_fraction_is_reported_not_truncated(dynamo: DynamoStore) -> None:
    # GIVEN an item another writer stored with a fractional number
    client().put_item(
        TableName="test-usage", Item={"pk": {"S": "t-1"}, "sk": {"S": "e-1"}, "q": {"N": "1.5"}}
    )
    # WHEN it is read THEN the store refuses to turn it into an int
    with pytest.raises(StoreError, match=r"attribute 'q': stored number 1.5 is not whole"):
        dynamo.get("usage", "t-1", "e-1")


# --- error mapping (botocore's Stubber plays the service) ----------------------------------------


def stubbed() -> tuple[DynamoStore, Stubber]:
    dynamodb = client()
    return DynamoStore(dynamodb, PREFIX), Stubber(dynamodb)


def cancelled(*codes: str) -> dict[str, Any]:
    return {"CancellationReasons": [{"Code": code} for code in codes]}


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        (("None", "TransactionConflict"), RetriableStoreError),
        (("ThrottlingError", "None"), RetriableStoreError),
        (("None", "ProvisionedThroughputExceeded"), RetriableStoreError),
        (("None", "ValidationError"), StoreError),
        (("TransactionConflict", "ItemCollectionSizeLimitExceeded"), StoreError),
    ],
)
def test_a_cancelled_transaction_is_retriable_only_for_transient_reasons(
    codes: tuple[str, ...], expected: type[StoreError]
) -> None:
    # GIVEN DynamoDB cancels a transaction for these reasons
    store, stubber = stubbed()
    stubber.add_client_error(
        "transact_write_items", "TransactionCanceledException", modeled_fields=cancelled(*codes)
    )

    # WHEN the store runs it THEN the error says whether a retry may succeed
    with stubber, pytest.raises(StoreError) as raised:
        store.transact([Put("usage", item("t-1", "a")), Put("usage", item("t-1", "b"))])
    assert type(raised.value) is expected
    assert not isinstance(raised.value, ConditionFailedError)


def test_a_failed_condition_wins_over_a_conflict_in_the_same_transaction() -> None:
    store, stubber = stubbed()
    stubber.add_client_error(
        "transact_write_items",
        "TransactionCanceledException",
        modeled_fields=cancelled("TransactionConflict", "None", "ConditionalCheckFailed"),
    )
    writes = [Put("usage", item("t-1", s)) for s in "ab"] + [Expect("usage", "t-1", "c", "n", None)]
    with stubber, pytest.raises(ConditionFailedError) as raised:
        store.transact(writes)
    assert raised.value.index == 2


@pytest.mark.parametrize(
    ("code", "retriable"),
    [
        ("ProvisionedThroughputExceededException", True),
        ("ThrottlingException", True),
        ("RequestLimitExceeded", True),
        ("InternalServerError", True),
        ("ResourceNotFoundException", False),
        ("ValidationException", False),
    ],
)
def test_a_request_error_is_mapped_with_its_aws_code(code: str, retriable: bool) -> None:
    store, stubber = stubbed()
    stubber.add_client_error("get_item", code, "said the service")
    with (
        stubber,
        pytest.raises(StoreError, match=rf"GetItem on test-usage: {code}: said the service") as raised,
    ):
        store.get("usage", "t-1", "e-1")
    assert isinstance(raised.value, RetriableStoreError) is retriable


def test_put_new_reads_the_stored_item_when_the_failure_does_not_carry_it() -> None:
    # GIVEN a service whose failed conditional put returns no item, then a consistent read that finds it
    store, stubber = stubbed()
    stubber.add_client_error("put_item", "ConditionalCheckFailedException", "The conditional request failed")
    stubber.add_response(
        "get_item",
        {"Item": {"pk": {"S": "t-1"}, "sk": {"S": "e-1"}, "n": {"N": "5"}}},
        {"TableName": "test-usage", "Key": {"pk": {"S": "t-1"}, "sk": {"S": "e-1"}}, "ConsistentRead": True},
    )

    # WHEN put_new meets the existing item THEN it returns what the read found
    with stubber:
        assert store.put_new("usage", item("t-1", "e-1", n=7)) == item("t-1", "e-1", n=5)
    stubber.assert_no_pending_responses()


# --- write request units -------------------------------------------------------------------------


def test_item_size_follows_aws_rules_on_hand_computed_items() -> None:
    # names and strings count their UTF-8 bytes; bytes their length; a bool 1
    assert item_size({"pk": "t#1", "sk": "e", "ok": True, "b": b"\x00\x01"}) == (2 + 3) + (2 + 1) + (
        2 + 1
    ) + (1 + 2)
    assert item_size({"pk": "€", "sk": "𝄞", "é": ""}) == (2 + 3) + (2 + 4) + (2 + 0)
    # a number: 1 byte per 2 significant digits (zeros trimmed at both ends), plus 1, plus 1 if negative
    assert item_size({"n": 1200}) == 1 + (1 + 1)
    assert item_size({"n": 0}) == 1 + 1
    assert item_size({"n": 12345}) == 1 + (3 + 1)
    assert item_size({"n": -(2**63)}) == 1 + (10 + 1 + 1)  # 9223372036854775808: 19 significant digits


def padded(size: int) -> dict[str, str | int | bytes | bool]:
    """An item of exactly `size` bytes: pk (3) + sk (3) + d (1 + len)."""
    return {"pk": "p", "sk": "s", "d": "x" * (size - 7)}


def test_write_units_round_each_write_up_to_the_kilobyte() -> None:
    assert item_size(padded(1024)) == 1024
    assert write_request_units(padded(1024), transactional=False) == 1
    assert write_request_units(padded(1025), transactional=False) == 2
    assert write_request_units(padded(1025), transactional=True) == 4
    assert write_request_units(padded(3 * 1024), transactional=True) == 6


def test_the_store_counts_the_write_units_it_issues(dynamo: DynamoStore) -> None:
    # GIVEN a fresh store
    assert dynamo.write_units == 0

    # WHEN it puts 1 KB, then 1 KB + 1 byte, then fails a put_new of 1 KB, then reads
    dynamo.put("usage", padded(1024))
    dynamo.put("usage", {**padded(1025), "sk": "t"})
    dynamo.put_new("usage", padded(1024))
    dynamo.get("usage", "p", "s")
    dynamo.query("usage", "p")

    # THEN it counted 1 + 2 + 1 (a failed conditional write is billed too; reads are not writes)
    assert dynamo.write_units == 4

    # WHEN a transaction puts 1 KB + 1 byte and checks one item, then one fails its condition
    dynamo.transact(
        [PutNew("usage", {**padded(1025), "sk": "u"}), Expect("usage", "p", "s", "version", None)]
    )
    with pytest.raises(ConditionFailedError):
        dynamo.transact([Put("usage", {**padded(10), "sk": "v"}), Expect("usage", "p", "s", "d", None)])

    # THEN each counts twice the units of each write, a check as 1 KB, the failed one too
    assert dynamo.write_units == 4 + (2 * 2 + 2 * 1) + (2 * 1 + 2 * 1)
