"""The store contract on Firestore (Google's emulator, one per session, emptied before each test),
then what is Firestore's own: document ids from any keys, prefix bounds, types and errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meterline.ports import RetriableStoreError, Store, StoreError
from tests.contract.conftest import FIRESTORE_PROJECT, reset_firestore
from tests.contract.store_contract import USAGE, StoreContract, by_key, item

pytest.importorskip("google.cloud.firestore", reason="google-cloud-firestore (gcp extra) is not installed")

from google.api_core import exceptions as api
from google.cloud import firestore

from meterline.adapters.firestore import FirestoreStore, document_id, prefix_end

PREFIX = "contract-"


@pytest.fixture(scope="module")
def client(firestore_emulator: str) -> firestore.Client:
    return firestore.Client(project=FIRESTORE_PROJECT)


@pytest.fixture
def emptied(firestore_emulator: str, client: firestore.Client) -> Iterator[firestore.Client]:
    reset_firestore(firestore_emulator)
    yield client


@pytest.fixture
def fs(emptied: firestore.Client) -> FirestoreStore:
    return FirestoreStore(emptied, PREFIX)


class TestFirestoreStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _emulator(self, emptied: firestore.Client) -> None:
        self.client = emptied

    def make_store(self) -> Store:
        return FirestoreStore(self.client, PREFIX)


# --- keys ----------------------------------------------------------------------------------------

AWKWARD_KEYS = [
    ("a/b", "c"),
    ("a", "b/c"),
    ("a%%b", "c"),
    ("a", "b%%c"),
    (".", "."),
    ("..", ""),
    ("__reserved__", "__x__"),
    ("_", "_"),
    ("%2F", "/"),
    ("", ""),
]


def test_ids_never_hold_a_slash_nor_take_a_reserved_form() -> None:
    for pk, sk in AWKWARD_KEYS:
        found = document_id(pk, sk)
        assert "/" not in found
        assert found not in (".", "..")
        assert not (found.startswith("__") and found.endswith("__"))
    assert len({document_id(pk, sk) for pk, sk in AWKWARD_KEYS}) == len(AWKWARD_KEYS)


def test_keys_firestore_forbids_in_ids_are_distinct_items_that_round_trip(fs: FirestoreStore) -> None:
    # GIVEN items under keys holding '/', '%%', dots and underscores that could collide once joined
    for index, (pk, sk) in enumerate(AWKWARD_KEYS):
        fs.put(USAGE, item(pk, sk, n=index))

    # THEN each reads back as itself, and the table holds each once
    for index, (pk, sk) in enumerate(AWKWARD_KEYS):
        assert fs.get(USAGE, pk, sk) == item(pk, sk, n=index)
    assert by_key(list(fs.scan(USAGE))) == by_key(
        [item(pk, sk, n=index) for index, (pk, sk) in enumerate(AWKWARD_KEYS)]
    )
    assert fs.query(USAGE, "a", "b/") == [item("a", "b/c", n=1)]


def test_the_end_of_a_prefix_is_the_least_string_above_all_it_begins() -> None:
    assert prefix_end("2026-11#") == "2026-11$"
    assert prefix_end("a\uf8ff") == "a\uf900"
    assert prefix_end("a\ud7ff") == "a\ue000"  # past the surrogates
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\U0010ffff") is None


def test_a_prefix_query_finds_sort_keys_beyond_the_basic_plane(fs: FirestoreStore) -> None:
    # GIVEN sort keys whose characters sort above U+F8FF (where the usual '\uf8ff' bound stops)
    for sk in ["a😀1", "a😀😀", "a😀\U0010ffff", "a😁", "a\uffff"]:
        fs.put(USAGE, item("t-1", sk))

    # WHEN queried by a prefix THEN exactly the keys it begins come back, in code point order
    assert [found["sk"] for found in fs.query(USAGE, "t-1", "a😀")] == ["a😀1", "a😀😀", "a😀\U0010ffff"]
    assert [found["sk"] for found in fs.query(USAGE, "t-1", "a")] == [
        "a\uffff",
        "a😀1",
        "a😀😀",
        "a😀\U0010ffff",
        "a😁",
    ]


# --- values --------------------------------------------------------------------------------------


def test_a_value_of_an_unsupported_type_is_a_one_line_store_error(fs: FirestoreStore) -> None:
    with pytest.raises(StoreError, match=r"^attribute 'price': float is not a str, int, bytes or bool$"):
        fs.put(USAGE, {"pk": "t-1", "sk": "e-1", "price": 1.5})  # type: ignore[dict-item]


def test_an_integer_past_64_bits_is_refused_before_it_is_sent(fs: FirestoreStore) -> None:
    with pytest.raises(StoreError, match=r"attribute 'n': 9223372036854775808 does not fit in 64 bits"):
        fs.put(USAGE, item("t-1", "e-1", n=2**63))
    assert fs.get(USAGE, "t-1", "e-1") is None


def test_a_field_another_writer_stored_as_a_float_is_reported(
    fs: FirestoreStore, emptied: firestore.Client
) -> None:
    emptied.collection(f"{PREFIX}{USAGE}").document(document_id("t-1", "e-1")).set(
        {"pk": "t-1", "sk": "e-1", "q": 1.5}
    )
    with pytest.raises(StoreError, match=r"field 'q' holds a float, not a str, int, bytes or bool"):
        fs.get(USAGE, "t-1", "e-1")


# --- error mapping (a stub client plays the service) ---------------------------------------------


class FailingDocuments:
    """Stands for the client, its collections and documents: every call fails as told."""

    path = "contract-usage/t-1%%e-1"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def collection(self, name: str) -> FailingDocuments:
        return self

    def document(self, name: str) -> FailingDocuments:
        return self

    def get(self) -> None:
        raise self.error

    def set(self, fields: object) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        (api.ServiceUnavailable("unavailable"), True),
        (api.Aborted("contention"), True),
        (api.DeadlineExceeded("slow"), True),
        (api.ResourceExhausted("quota"), True),
        (api.InvalidArgument("too large"), False),
        (api.PermissionDenied("no"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_a_service_error_is_a_store_error_that_says_whether_to_retry(
    error: Exception, retriable: bool
) -> None:
    store = FirestoreStore(FailingDocuments(error), PREFIX)  # type: ignore[arg-type]
    for call in (lambda: store.get(USAGE, "t-1", "e-1"), lambda: store.put(USAGE, item("t-1", "e-1"))):
        with pytest.raises(StoreError, match=rf"contract-usage/t-1%%e-1: {type(error).__name__}: ") as raised:
            call()
        assert isinstance(raised.value, RetriableStoreError) is retriable
