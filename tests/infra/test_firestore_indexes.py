"""Every range query the jobs issue has its composite index in every GCP stack: the query's shape is
read from the Firestore adapter itself, the tables it runs on from the jobs at work."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from infra.components.gcp.ledgers import COLLECTION_PREFIX, QUERIED_TABLES
from infra.config import stack_names
from meterline.adapters.firestore_layout import QUERY_INDEX, collection_name
from meterline.adapters.memory import MemoryPublisher
from meterline.pipeline.cell import Cell
from tests.infra.builds import key, of_type
from tests.pipeline.test_cell import CATALOG, deliver, make_events

pytest.importorskip("google.cloud.firestore", reason="google-cloud-firestore (the gcp extra) is missing")

from meterline.adapters.firestore import FirestoreStore

GCP_STACKS = [stack for stack in stack_names() if stack.startswith("gcp-")]


class RecordedQuery:
    """Stands in for a Firestore collection: records the filters and ordering a query is built with."""

    def __init__(self, collection: str, shapes: list[tuple[str, tuple[tuple[str, str], ...]]]) -> None:
        self.id = collection
        self.shapes = shapes
        self.equal: list[str] = []
        self.ranged: list[str] = []
        self.ordered: list[tuple[str, str]] = []

    def where(self, *, filter: Any) -> RecordedQuery:
        (self.equal if filter.op_string == "==" else self.ranged).append(filter.field_path)
        return self

    def order_by(self, field: str, direction: str = "ASCENDING") -> RecordedQuery:
        self.ordered.append((field, direction))
        return self

    def stream(self) -> list[Any]:
        # Firestore's rule: equality fields first, then the fields ranged over or ordered by
        assert {field for field, _ in self.ordered} >= set(self.ranged), "a range on a field not ordered by"
        index = tuple((field, "ASCENDING") for field in self.equal) + tuple(self.ordered)
        self.shapes.append((self.id, index))
        return []


class RecordingClient:
    def __init__(self) -> None:
        self.shapes: list[tuple[str, tuple[tuple[str, str], ...]]] = []

    def collection(self, name: str) -> RecordedQuery:
        return RecordedQuery(name, self.shapes)


@pytest.mark.parametrize("sk_prefix", ["", "partial|000001|"])
def test_the_adapters_query_needs_exactly_the_declared_index(sk_prefix: str) -> None:
    # GIVEN the Firestore store on a client that records how queries are built
    client = RecordingClient()
    store = FirestoreStore(client, COLLECTION_PREFIX)  # type: ignore[arg-type]
    # WHEN it queries a partition, with and without a key range
    store.query("aggregates", "period|2026-11", sk_prefix)
    # THEN the composite index that query needs is QUERY_INDEX, on the prefixed collection
    assert client.shapes == [(collection_name(COLLECTION_PREFIX, "aggregates"), QUERY_INDEX)]


def test_the_jobs_query_only_the_tables_infra_indexes() -> None:
    # GIVEN a cell whose store records every range query, and a month big enough to roll windows up
    cell = Cell(CATALOG, MemoryPublisher(), stream_batch=20)
    queries: list[tuple[str, str]] = []
    query = cell.store.query

    def recording(table: str, pk: str, sk_prefix: str = "") -> Any:
        queries.append((table, sk_prefix))
        return query(table, pk, sk_prefix)

    cell.store.query = recording  # type: ignore[method-assign]
    # WHEN usage is metered, aggregated, rated, rolled up and closed, late usage amended
    events = make_events(seed=11, count=3000)
    deliver(cell, events[:2500], first_offset=0)
    cell.close(datetime(2026, 11, 2, tzinfo=UTC))
    deliver(cell, events[2500:], first_offset=2500)
    cell.close(datetime(2027, 1, 1, tzinfo=UTC))
    # THEN every table queried is one infra indexes (and the run did reach the rollups)
    assert {table for table, _ in queries} <= set(QUERIED_TABLES)
    assert any(prefix.startswith("rollup|") for _, prefix in queries)


@pytest.mark.parametrize("stack", GCP_STACKS)
def test_each_queried_collection_has_its_composite_index(previews: dict[str, Any], stack: str) -> None:
    build = previews[stack]
    [database] = of_type(build, "gcp:firestore/database:Database")
    indexes = {r["inputs"]["collection"]: r for r in of_type(build, "gcp:firestore/index:Index")}
    for table in QUERIED_TABLES:
        index = indexes[collection_name(COLLECTION_PREFIX, table)]
        inputs = index["inputs"]
        assert inputs["database"] == database["inputs"]["name"] and inputs["queryScope"] == "COLLECTION"
        assert tuple((f["fieldPath"], f["order"]) for f in inputs["fields"]) == QUERY_INDEX
        assert key(database) in index["dependencies"]
