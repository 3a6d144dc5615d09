"""The store contract on Azure Tables (Azurite, in memory, one per session; fresh tables per test),
unchanged, then what is Azure's own."""

from __future__ import annotations

import itertools
import socket
from typing import Any

import pytest

from meterline.catalog import MAX_TENANT_BYTES, key_name_problem
from meterline.ports import (
    ConditionFailedError,
    Expect,
    Put,
    PutIf,
    PutNew,
    RetriableStoreError,
    Store,
    StoreError,
    Write,
)
from meterline.records import key_part
from tests.contract.conftest import AZURITE_ACCOUNT, AZURITE_KEY
from tests.contract.store_contract import INVOICES, USAGE, StoreContract, item

pytest.importorskip("azure.data.tables", reason="azure-data-tables (the azure extra) is not installed")

from azure.data.tables import EdmType, TableServiceClient

from meterline.adapters.tables import (
    PLACEHOLDER,
    TablesStore,
    create_tables,
    escape_key,
    unescape_key,
)

prefixes = (f"contract{number}" for number in itertools.count())


@pytest.fixture
def service(azurite: str) -> TableServiceClient:
    return TableServiceClient.from_connection_string(azurite)


@pytest.fixture
def prefix(service: TableServiceClient) -> str:
    """A prefix whose tables were just created, so each test starts on empty tables."""
    chosen = next(prefixes)
    create_tables(service, chosen)
    return chosen


@pytest.fixture
def az(service: TableServiceClient, prefix: str) -> TablesStore:
    return TablesStore(service, prefix)


class TestTablesStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _azurite(self, service: TableServiceClient, prefix: str) -> None:
        self.service = service
        self.prefix = prefix

    def make_store(self) -> Store:
        return TablesStore(self.service, self.prefix)


# --- the strictest store: what makes the catalog's tenant limit ----------------------------------


def test_a_tenant_one_byte_past_the_catalogs_limit_makes_a_partition_key_azure_refuses(
    az: TablesStore,
) -> None:
    # GIVEN a tenant one byte longer than a catalog accepts, of the character escaping lengthens most
    tenant = "%" * (MAX_TENANT_BYTES + 1)
    assert key_name_problem(tenant) is not None

    # WHEN its invoice is written THEN Azure Tables refuses the key: the limit is Azure's, not arbitrary
    assert len(escape_key(key_part(tenant))) == 5 * (MAX_TENANT_BYTES + 1) > 512
    with pytest.raises(StoreError):
        az.put(INVOICES, item(key_part(tenant), "2026-11"))


# --- Expect of an absent item: a placeholder that reads as absent --------------------------------


def test_expect_none_on_a_missing_item_holds_and_the_item_stays_absent_to_every_read(az: TablesStore) -> None:
    # WHEN a transaction checks an item is absent
    az.transact([Expect(USAGE, "fence", "2026-11", "closed_at", None), Put(USAGE, item("fence", "k"))])

    # THEN the check held, and no read shows the checked item
    assert az.get(USAGE, "fence", "2026-11") is None
    assert az.query(USAGE, "fence") == [item("fence", "k")]
    assert list(az.scan(USAGE)) == [item("fence", "k")]
    az.transact([Expect(USAGE, "fence", "2026-11", "closed_at", None)])
    with pytest.raises(ConditionFailedError):
        az.transact([Expect(USAGE, "fence", "2026-11", "closed_at", "yesterday")])


@pytest.mark.parametrize(
    "create",
    [
        lambda store: store.put_new(USAGE, item("fence", "2026-11", closed_at="now")),
        lambda store: store.transact([PutNew(USAGE, item("fence", "2026-11", closed_at="now"))]),
        lambda store: store.transact(
            [PutIf(USAGE, item("fence", "2026-11", closed_at="now"), "closed_at", None)]
        ),
        lambda store: store.put(USAGE, item("fence", "2026-11", closed_at="now")),
    ],
    ids=["put_new", "PutNew", "PutIf", "put"],
)
def test_an_item_created_where_an_absence_was_checked_replaces_the_placeholder(
    az: TablesStore, create: Any
) -> None:
    # GIVEN an absence checked by a transaction
    az.transact([Expect(USAGE, "fence", "2026-11", "closed_at", None)])

    # WHEN the item is created THEN it is created as if nothing stood there
    assert create(az) is None
    assert az.get(USAGE, "fence", "2026-11") == item("fence", "2026-11", closed_at="now")
    assert az.put_new(USAGE, item("fence", "2026-11", closed_at="later")) == item(
        "fence", "2026-11", closed_at="now"
    )


class RacingStore(TablesStore):
    """A store in which another writer acts once, after the second write of a transaction was planned."""

    def __init__(self, *args: Any, meanwhile: Any) -> None:
        super().__init__(*args)
        self.meanwhile = meanwhile
        self.built = 0

    def _operation(self, client: Any, index: int, write: Write) -> tuple[Any, ...]:
        operation = super()._operation(client, index, write)
        self.built += 1
        if self.built == 2:
            self.meanwhile()
        return operation


def test_an_absence_check_fails_when_the_item_is_created_between_the_read_and_the_commit(
    service: TableServiceClient, prefix: str, az: TablesStore
) -> None:
    # GIVEN a transaction that checks a fence is absent, and a closer that creates the fence after
    # the transaction read it as absent but before the transaction commits
    racing = RacingStore(
        service, prefix, meanwhile=lambda: az.put_new(USAGE, item("agg", "fence", closed_at="now"))
    )

    # WHEN the transaction runs
    with pytest.raises(ConditionFailedError) as raised:
        racing.transact(
            [Expect(USAGE, "agg", "fence", "closed_at", None), PutNew(USAGE, item("agg", "partial"))]
        )

    # THEN its batch failed on the changed fence, was evaluated again, and failed the condition
    assert raised.value.index == 0
    assert az.query(USAGE, "agg") == [item("agg", "fence", closed_at="now")]


def test_a_condition_on_an_item_changed_between_the_read_and_the_commit_is_evaluated_again(
    service: TableServiceClient, prefix: str, az: TablesStore
) -> None:
    # GIVEN a version 1, moved to 2 by another writer after the transaction read it
    az.put(USAGE, item("t-1", "checkpoint", version=1))
    racing = RacingStore(
        service, prefix, meanwhile=lambda: az.put(USAGE, item("t-1", "checkpoint", version=2))
    )

    # WHEN the transaction moves it from 1 to 3 THEN it fails, leaving the other writer's version
    with pytest.raises(ConditionFailedError) as raised:
        racing.transact(
            [
                Put(USAGE, item("t-1", "other")),
                PutIf(USAGE, item("t-1", "checkpoint", version=3), "version", 1),
            ]
        )
    assert raised.value.index == 1
    assert az.query(USAGE, "t-1") == [item("t-1", "checkpoint", version=2)]


# --- keys, names and types -----------------------------------------------------------------------

AZURE_FORBIDDEN = "#/\\?\x00\x1f\x7f\x9f"


def test_keys_with_characters_azure_forbids_round_trip_and_are_stored_escaped(
    az: TablesStore, service: TableServiceClient, prefix: str
) -> None:
    # GIVEN keys holding every character Azure forbids, '%' and non-ASCII text
    pk, sk = f"tenant{AZURE_FORBIDDEN}%ü", f"2026-11|{AZURE_FORBIDDEN}|'\" +&=😀"

    # WHEN an item is put THEN it reads back under its own keys, by get, query and scan
    az.put(USAGE, item(pk, sk, n=1))
    assert az.get(USAGE, pk, sk) == item(pk, sk, n=1)
    assert az.query(USAGE, pk, "2026-11|#") == [item(pk, sk, n=1)]
    assert list(az.scan(USAGE)) == [item(pk, sk, n=1)]

    # AND the stored keys hold none of the forbidden characters
    (entity,) = service.get_table_client(f"{prefix}{USAGE}").list_entities()
    for key in (entity["PartitionKey"], entity["RowKey"]):
        assert not set(key) & set(AZURE_FORBIDDEN)
        assert key.isascii()


def test_escaping_keeps_prefixes_but_not_order_so_queries_sort_here(az: TablesStore) -> None:
    # '#' (0x23) sorts before '$' (0x24), but its escape '%23' sorts after '$'
    assert escape_key("a#") > escape_key("a$")
    assert unescape_key(escape_key("a#/é")) == "a#/é"
    for sk in ["a$", "a#", "a#b", "a\x00"]:
        az.put(USAGE, item("t-1", sk))
    assert [found["sk"] for found in az.query(USAGE, "t-1", "a")] == ["a\x00", "a#", "a#b", "a$"]
    assert [found["sk"] for found in az.query(USAGE, "t-1", "a#")] == ["a#", "a#b"]


def test_every_integer_is_stored_as_int64_whatever_its_size(
    az: TablesStore, service: TableServiceClient, prefix: str
) -> None:
    az.put(USAGE, item("t-1", "k", small=1, large=2**40))
    entity = service.get_table_client(f"{prefix}{USAGE}").get_entity(escape_key("t-1"), "k")
    assert {name: entity[name].edm_type for name in ("small", "large")} == {
        "small": EdmType.INT64,
        "large": EdmType.INT64,
    }


def test_values_above_azures_64_kib_per_property_are_stored_in_parts_and_joined_on_reading(
    az: TablesStore, service: TableServiceClient, prefix: str
) -> None:
    # GIVEN a 350 KB packed state and a text of 40,000 characters of two UTF-16 units each
    book = bytes(range(256)) * 1_367
    text = "😀" * 40_000

    # WHEN they are put, and a transaction conditions on the state
    az.put(USAGE, item("partial", "2026-11", book=book, text=text, n=1))
    az.transact([PutIf(USAGE, item("partial", "2026-11", book=book, text=text, n=2), "book", book)])

    # THEN they read back whole, by get and by query, while no stored property passes 64 KiB
    assert az.get(USAGE, "partial", "2026-11") == item("partial", "2026-11", book=book, text=text, n=2)
    assert az.query(USAGE, "partial") == [item("partial", "2026-11", book=book, text=text, n=2)]
    (entity,) = service.get_table_client(f"{prefix}{USAGE}").list_entities()
    stored = [
        v.encode("utf-16-le") if isinstance(v, str) else v
        for v in entity.values()
        if isinstance(v, str | bytes)
    ]
    assert max(len(value) for value in stored) <= 64 * 1024
    assert len(stored) > 10


@pytest.mark.parametrize("name", ["PartitionKey", "RowKey", "Timestamp", PLACEHOLDER, "meterline_part000_x"])
def test_an_attribute_named_as_azure_reserves_is_a_store_error(az: TablesStore, name: str) -> None:
    with pytest.raises(StoreError, match=rf"^attribute '{name}': the name is reserved in Azure Tables$"):
        az.put(USAGE, {"pk": "t-1", "sk": "k", name: "x"})


def test_a_prefix_azure_cannot_name_a_table_with_is_a_store_error(service: TableServiceClient) -> None:
    with pytest.raises(StoreError, match=r"table name 'cell-eu-usage': Azure wants 3-63 letters and digits"):
        TablesStore(service, "cell-eu-")


def test_a_value_of_an_unsupported_type_is_a_one_line_store_error(az: TablesStore) -> None:
    with pytest.raises(StoreError, match=r"^attribute 'price': float is not a str, int, bytes or bool$"):
        az.put(USAGE, {"pk": "t-1", "sk": "e-1", "price": 1.5})  # type: ignore[dict-item]


def test_a_missing_table_is_a_store_error(service: TableServiceClient) -> None:
    store = TablesStore(service, "nevercreated")
    with pytest.raises(StoreError, match="no such table"):
        store.get(USAGE, "t-1", "k")
    with pytest.raises(StoreError, match="TableNotFound"):
        store.put(USAGE, item("t-1", "k"))


def test_an_unreachable_service_is_a_retriable_store_error() -> None:
    # GIVEN a service client pointing at a port nothing listens on, without the SDK's own retries
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    )
    store = TablesStore(TableServiceClient.from_connection_string(connection, retry_total=0), "nowhere")

    # WHEN it is read THEN the error says a retry may succeed
    with pytest.raises(RetriableStoreError, match=r"^get nowhereusage t-1/k: "):
        store.get(USAGE, "t-1", "k")
