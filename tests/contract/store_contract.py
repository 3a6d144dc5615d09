"""The store port's contract (``meterline.ports.Store``), written against the port alone.

Each adapter's test module subclasses ``StoreContract`` with its own ``make_store``; this base is
not collected by itself (its name does not start with ``Test``).
"""

from __future__ import annotations

import random
import threading
from abc import ABC, abstractmethod

import pytest

from meterline.catalog import MAX_TENANT_BYTES, key_name_problem
from meterline.ports import (
    MAX_TRANSACTION_WRITES,
    ConditionFailedError,
    Expect,
    Item,
    Put,
    PutIf,
    PutNew,
    RetriableStoreError,
    Store,
    StoreError,
    Write,
)
from meterline.records import key_part
from meterline.topology import CHARGES_TABLE, INVOICES_TABLE, USAGE_TABLE

USAGE = USAGE_TABLE.name
INVOICES = INVOICES_TABLE.name
CHARGES = CHARGES_TABLE.name

LONGEST_TENANTS = ["%" * MAX_TENANT_BYTES, "|" * MAX_TENANT_BYTES, "😀" * 25 + "?#", "é" * 51]
"""Tenants of the most bytes a catalog accepts, made of what key escaping lengthens most."""
LONGEST_CHARGES_SK = f"2026-11|alert|{'9' * 30}.{'9' * 30}"
"""rate's sort key of a spend alert whose threshold has the most digits a catalog allows."""


def item(pk: str, sk: str, **attributes: str | int | bytes | bool) -> Item:
    return {"pk": pk, "sk": sk, **attributes}


def by_key(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda found: (str(found["pk"]), str(found["sk"])))


def failing(kind: str) -> Write:
    """A write whose condition fails against the item ``existing()`` stores."""
    if kind == "PutNew":
        return PutNew(USAGE, item("t-1", "existing", version=9))
    if kind == "PutIf":
        return PutIf(USAGE, item("t-1", "existing", version=9), "version", 2)
    return Expect(USAGE, "t-1", "existing", "version", None)


def existing() -> Item:
    return item("t-1", "existing", version=1)


class StoreContract(ABC):
    @abstractmethod
    def make_store(self) -> Store:
        """A store holding every topology table, all empty."""

    @pytest.fixture
    def store(self) -> Store:
        return self.make_store()

    # --- get, put, put_new ---------------------------------------------------------------------

    def test_get_of_a_missing_item_returns_none(self, store: Store) -> None:
        # GIVEN an empty table WHEN an item is read THEN there is none
        assert store.get(USAGE, "t-1", "nothing") is None

    def test_put_then_get_round_trips_every_scalar_type_exactly(self, store: Store) -> None:
        # GIVEN an item holding the extremes of every scalar type
        written = item(
            "tenant#ü",
            "2026-11#𝄞",
            largest=2**63 - 1,
            smallest=-(2**63),
            zero=0,
            negative=-1,
            digits=10**18 + 1,
            nuls=b"\x00meter\x00\xff\x00",
            text="naïve € 😀 𝄞 — 漢字",
            empty="",
            yes=True,
            no=False,
            one=1,
        )

        # WHEN it is put and read back
        store.put(USAGE, written)
        read = store.get(USAGE, "tenant#ü", "2026-11#𝄞")

        # THEN every value comes back equal and of the same type (bools stay bools, ints stay ints)
        assert read == written
        assert read is not None
        assert {name: type(value) for name, value in read.items()} == {
            name: type(value) for name, value in written.items()
        }

    def test_put_new_on_an_absent_item_creates_it_and_returns_none(self, store: Store) -> None:
        # GIVEN no item WHEN put_new creates one
        returned = store.put_new(USAGE, item("t-1", "e-1", quantity=5))

        # THEN nothing was stored before, and now the item is
        assert returned is None
        assert store.get(USAGE, "t-1", "e-1") == item("t-1", "e-1", quantity=5)

    def test_put_new_on_a_present_item_writes_nothing_and_returns_the_stored_item(self, store: Store) -> None:
        # GIVEN a stored item
        store.put(USAGE, item("t-1", "e-1", quantity=5, digest=b"\x01\x02"))

        # WHEN put_new is given another item with the same keys
        returned = store.put_new(USAGE, item("t-1", "e-1", quantity=7))

        # THEN it returns the stored item, which is unchanged
        assert returned == item("t-1", "e-1", quantity=5, digest=b"\x01\x02")
        assert store.get(USAGE, "t-1", "e-1") == item("t-1", "e-1", quantity=5, digest=b"\x01\x02")

    def test_put_overwrites_the_whole_item(self, store: Store) -> None:
        # GIVEN a stored item with two attributes
        store.put(USAGE, item("t-1", "e-1", quantity=5, note="first"))

        # WHEN an item with the same keys and one other attribute is put
        store.put(USAGE, item("t-1", "e-1", quantity=6))

        # THEN the new item replaces the old one entirely
        assert store.get(USAGE, "t-1", "e-1") == item("t-1", "e-1", quantity=6)

    def test_the_same_keys_in_two_tables_are_two_items(self, store: Store) -> None:
        # GIVEN the same keys put in two tables
        store.put(USAGE, item("t-1", "k", where="usage"))
        store.put(INVOICES, item("t-1", "k", where="invoices"))

        # THEN each table holds its own
        assert store.get(USAGE, "t-1", "k") == item("t-1", "k", where="usage")
        assert store.get(INVOICES, "t-1", "k") == item("t-1", "k", where="invoices")

    def test_an_unknown_table_is_a_store_error(self, store: Store) -> None:
        with pytest.raises(StoreError):
            store.get("no-such-table", "t-1", "k")
        with pytest.raises(StoreError):
            store.put("no-such-table", item("t-1", "k"))
        with pytest.raises(StoreError):
            store.scan("no-such-table")

    # --- query ---------------------------------------------------------------------------------

    def test_query_returns_only_that_partition_filtered_by_prefix_and_sorted_by_sort_key(
        self, store: Store
    ) -> None:
        # GIVEN items of two partitions, put in shuffled order
        sort_keys = ["2026-11#b", "2026-11#a", "2026-11", "2026-12#a", "2026-1", "2026-11#a#x", "2026-11#é"]
        for sk in random.Random(7).sample(sort_keys, len(sort_keys)):
            store.put(USAGE, item("t-1", sk, n=1))
        store.put(USAGE, item("t-2", "2026-11#a", n=2))
        store.put(USAGE, item("t-10", "2026-11#a", n=3))

        # WHEN the partition is queried with and without a prefix
        november = store.query(USAGE, "t-1", "2026-11#")
        everything = store.query(USAGE, "t-1")

        # THEN only t-1's items come back, those under the prefix, by sort key (code point order)
        assert [found["sk"] for found in november] == ["2026-11#a", "2026-11#a#x", "2026-11#b", "2026-11#é"]
        assert [found["sk"] for found in everything] == sorted(sort_keys)
        assert {found["pk"] for found in everything} == {"t-1"}
        assert november[0] == item("t-1", "2026-11#a", n=1)

    def test_query_matching_nothing_returns_an_empty_list(self, store: Store) -> None:
        store.put(USAGE, item("t-1", "2026-11#a"))
        assert store.query(USAGE, "t-1", "2027") == []
        assert store.query(USAGE, "t-9") == []

    def test_query_returns_every_item_of_a_partition_larger_than_a_megabyte(self, store: Store) -> None:
        # GIVEN 1,200 items of about 1 KB each under one partition (past DynamoDB's 1 MB page)
        count = 1_200
        for index in range(count):
            store.put(USAGE, item("big", f"e#{index:05d}", payload="x" * 1_000, index=index))

        # WHEN the partition is queried
        found = store.query(USAGE, "big", "e#")

        # THEN every item comes back once, in order
        assert [entry["index"] for entry in found] == list(range(count))

    # --- transact: all or nothing within one partition, as every store (Azure Tables too) keeps --

    def test_a_transaction_whose_conditions_hold_applies_every_write(self, store: Store) -> None:
        # GIVEN two stored items of one partition
        store.put(USAGE, item("t-1", "checkpoint", offset=10))
        store.put(USAGE, item("t-1", "fence", closed=False))

        # WHEN a transaction of each kind of write runs on that partition
        store.transact(
            [
                PutNew(USAGE, item("t-1", "new", n=1)),
                Put(USAGE, item("t-1", "overwritten", n=2)),
                PutIf(USAGE, item("t-1", "checkpoint", offset=20), "offset", 10),
                Expect(USAGE, "t-1", "fence", "closed", False),
            ]
        )

        # THEN every write is visible and the checked item is unchanged
        assert store.get(USAGE, "t-1", "new") == item("t-1", "new", n=1)
        assert store.get(USAGE, "t-1", "overwritten") == item("t-1", "overwritten", n=2)
        assert store.get(USAGE, "t-1", "checkpoint") == item("t-1", "checkpoint", offset=20)
        assert store.get(USAGE, "t-1", "fence") == item("t-1", "fence", closed=False)

    @pytest.mark.parametrize("kind", ["PutNew", "PutIf", "Expect"])
    @pytest.mark.parametrize("index", [0, 2])
    def test_a_failing_condition_names_its_index_and_no_write_is_visible(
        self, store: Store, kind: str, index: int
    ) -> None:
        # GIVEN a stored item and a transaction whose write at `index` fails against it
        store.put(USAGE, existing())
        writes: list[Write] = [
            PutNew(USAGE, item("t-1", "a", n=1)),
            Put(USAGE, item("t-1", "b", n=2)),
            PutIf(USAGE, item("t-1", "c", n=3), "n", None),
        ]
        writes.insert(index, failing(kind))

        # WHEN it runs
        with pytest.raises(ConditionFailedError) as raised:
            store.transact(writes)

        # THEN the error names that write, and nothing of the transaction was written
        assert raised.value.index == index
        assert store.query(USAGE, "t-1") == [existing()]

    def test_the_first_failing_condition_is_the_one_named(self, store: Store) -> None:
        # GIVEN a transaction whose writes 1 and 3 both fail
        store.put(USAGE, existing())
        store.put(USAGE, item("t-1", "invoice", state="open"))
        writes: list[Write] = [
            Put(USAGE, item("t-1", "a")),
            Expect(USAGE, "t-1", "invoice", "state", "closed"),
            Put(USAGE, item("t-1", "b")),
            failing("PutNew"),
        ]

        # WHEN it runs THEN write 1 is named
        with pytest.raises(ConditionFailedError) as raised:
            store.transact(writes)
        assert raised.value.index == 1

    @pytest.mark.parametrize(
        "other",
        [
            Put(USAGE, item("t-2", "k")),
            Put(INVOICES, item("t-1", "k")),
            Expect(INVOICES, "t-1", "k", "n", None),
        ],
        ids=["another-pk", "another-table", "an-expect-elsewhere"],
    )
    def test_a_transaction_beyond_one_partition_is_refused_before_anything_is_written(
        self, store: Store, other: Write
    ) -> None:
        # GIVEN a transaction whose writes all hold, one of them outside the first's partition
        writes: list[Write] = [PutNew(USAGE, item("t-1", "a")), other]

        # WHEN it runs THEN the port refuses it, not as a failed condition, and nothing is written
        with pytest.raises(StoreError, match=r"^a transaction writes one partition") as raised:
            store.transact(writes)
        assert not isinstance(raised.value, ConditionFailedError)
        assert list(store.scan(USAGE)) == [] and list(store.scan(INVOICES)) == []

    def test_put_if_expecting_none_creates_an_absent_item(self, store: Store) -> None:
        store.transact([PutIf(USAGE, item("t-1", "k", version=1), "version", None)])
        assert store.get(USAGE, "t-1", "k") == item("t-1", "k", version=1)

    def test_put_if_expecting_none_overwrites_an_item_lacking_the_attribute(self, store: Store) -> None:
        # GIVEN an item without a `version`
        store.put(USAGE, item("t-1", "k", note="no version yet"))

        # WHEN a PutIf expects no `version`
        store.transact([PutIf(USAGE, item("t-1", "k", version=1), "version", None)])

        # THEN the condition held and the item is replaced
        assert store.get(USAGE, "t-1", "k") == item("t-1", "k", version=1)

    def test_put_if_expecting_none_fails_when_the_attribute_is_there(self, store: Store) -> None:
        store.put(USAGE, item("t-1", "k", version=1))
        with pytest.raises(ConditionFailedError) as raised:
            store.transact([PutIf(USAGE, item("t-1", "k", version=2), "version", None)])
        assert raised.value.index == 0
        assert store.get(USAGE, "t-1", "k") == item("t-1", "k", version=1)

    def test_put_if_with_the_expected_value_overwrites(self, store: Store) -> None:
        store.put(USAGE, item("t-1", "k", version=b"\x00v1"))
        store.transact([PutIf(USAGE, item("t-1", "k", version=b"\x00v2"), "version", b"\x00v1")])
        assert store.get(USAGE, "t-1", "k") == item("t-1", "k", version=b"\x00v2")

    @pytest.mark.parametrize(
        ("stored", "expected"),
        [(1, 2), (1, "1"), (1, True), (True, 1), (0, False), ("a", b"a")],
        ids=["other-value", "int-vs-str", "int-vs-bool", "bool-vs-int", "zero-vs-false", "str-vs-bytes"],
    )
    def test_put_if_with_a_wrong_value_or_type_fails(
        self, store: Store, stored: str | int | bool, expected: str | int | bytes | bool
    ) -> None:
        # GIVEN a stored attribute
        store.put(USAGE, item("t-1", "k", version=stored))

        # WHEN a PutIf expects another value, or an equal one of another type
        with pytest.raises(ConditionFailedError) as raised:
            store.transact(
                [Put(USAGE, item("t-1", "x")), PutIf(USAGE, item("t-1", "k"), "version", expected)]
            )

        # THEN it fails and nothing changes
        assert raised.value.index == 1
        assert store.get(USAGE, "t-1", "k") == item("t-1", "k", version=stored)
        assert store.get(USAGE, "t-1", "x") is None

    def test_expect_none_on_a_missing_item_holds(self, store: Store) -> None:
        store.transact([Expect(USAGE, "t-1", "missing", "state", None), Put(USAGE, item("t-1", "k"))])
        assert store.get(USAGE, "t-1", "k") == item("t-1", "k")
        assert store.get(USAGE, "t-1", "missing") is None

    def test_expect_a_value_on_a_missing_item_fails(self, store: Store) -> None:
        with pytest.raises(ConditionFailedError) as raised:
            store.transact([Put(USAGE, item("t-1", "k")), Expect(USAGE, "t-1", "missing", "state", "open")])
        assert raised.value.index == 1
        assert store.get(USAGE, "t-1", "k") is None

    def test_a_transaction_of_the_maximum_size_is_applied(self, store: Store) -> None:
        writes = [Put(USAGE, item("t-1", f"k{index:03d}")) for index in range(MAX_TRANSACTION_WRITES)]
        store.transact(writes)
        assert len(store.query(USAGE, "t-1")) == MAX_TRANSACTION_WRITES

    def test_a_transaction_of_more_than_the_maximum_is_rejected_and_writes_nothing(
        self, store: Store
    ) -> None:
        writes = [Put(USAGE, item("t-1", f"k{index:03d}")) for index in range(MAX_TRANSACTION_WRITES + 1)]
        with pytest.raises(StoreError):
            store.transact(writes)
        assert store.query(USAGE, "t-1") == []

    def test_a_transaction_touching_one_item_twice_is_rejected_and_writes_nothing(self, store: Store) -> None:
        writes: list[Write] = [
            Put(USAGE, item("t-1", "other")),
            Put(USAGE, item("t-1", "k", n=1)),
            Expect(USAGE, "t-1", "k", "n", None),
        ]
        with pytest.raises(StoreError) as raised:
            store.transact(writes)
        assert not isinstance(raised.value, ConditionFailedError)
        assert store.query(USAGE, "t-1") == []

    def test_an_empty_transaction_does_nothing(self, store: Store) -> None:
        store.transact([])
        assert list(store.scan(USAGE)) == []

    def test_two_writers_racing_on_one_condition_leave_exactly_one_write(self, store: Store) -> None:
        # GIVEN a stored version 1, and two writers that each move it from 1 to 2
        store.put(USAGE, item("t-1", "checkpoint", version=1))
        outcomes: list[str] = []
        start = threading.Barrier(2)

        def writer(name: str) -> None:
            start.wait()
            try:
                store.transact([PutIf(USAGE, item("t-1", "checkpoint", version=2, by=name), "version", 1)])
                outcomes.append("written")
            except ConditionFailedError:
                outcomes.append("condition failed")
            except RetriableStoreError:
                outcomes.append("retriable")

        threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        # THEN one wrote; the other saw its condition fail (or was told to retry), whatever the interleaving
        assert sorted(outcomes) in (["condition failed", "written"], ["retriable", "written"])
        stored = store.get(USAGE, "t-1", "checkpoint")
        assert stored is not None
        assert stored["version"] == 2
        assert stored["by"] in ("a", "b")

    # --- scan ----------------------------------------------------------------------------------

    def test_scan_returns_every_item_of_the_table_and_no_other(self, store: Store) -> None:
        # GIVEN items in several partitions of one table, and one in another table
        written = [
            item(f"t-{tenant}", f"e-{event}", n=tenant * 10 + event)
            for tenant in range(5)
            for event in range(4)
        ]
        for entry in written:
            store.put(USAGE, entry)
        store.put(INVOICES, item("t-0", "e-0", n=-1))

        # WHEN the table is scanned THEN exactly its items come back
        assert by_key(list(store.scan(USAGE))) == by_key(written)
        assert list(store.scan(INVOICES)) == [item("t-0", "e-0", n=-1)]

    # --- keys ----------------------------------------------------------------------------------

    @pytest.mark.parametrize("tenant", LONGEST_TENANTS, ids=["percent", "bar", "emoji", "accent"])
    def test_the_longest_tenant_a_catalog_accepts_keys_its_invoices_and_charges(
        self, store: Store, tenant: str
    ) -> None:
        # GIVEN a tenant the catalog accepts, as long as it may be, as close and rate key it
        assert key_name_problem(tenant) is None
        invoice = item(key_part(tenant), "2026-11", published=False)
        alert = item(key_part(tenant), LONGEST_CHARGES_SK, spend="1")

        # WHEN its invoice and its spend alert are written
        assert store.put_new(INVOICES, invoice) is None
        store.put(CHARGES, alert)

        # THEN both read back, by key and by partition
        assert store.get(INVOICES, key_part(tenant), "2026-11") == invoice
        assert store.query(CHARGES, key_part(tenant), "2026-11|alert|") == [alert]
