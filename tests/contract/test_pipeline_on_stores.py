"""The whole pipeline — meter, aggregate, rate with rollups and drafts, close with numbered invoices
and amendments for late usage — on every real ledger: each transaction it issues must be one the
store can commit (Azure Tables: one partition only), the numbers must have no gap, and invoices
plus amendments must equal `meterline rate` on the same events."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import boto3
import orjson
import pytest
from moto import mock_aws

import meterline.pipeline.ledger
from meterline.adapters.dynamodb import DynamoStore
from meterline.adapters.dynamodb import create_tables as create_dynamo_tables
from meterline.adapters.memory import MemoryPublisher, MemoryStore
from meterline.bootstrap import Jobs
from meterline.periods import Period
from meterline.pipeline.aggregate import StreamRecord
from meterline.pipeline.invoices import all_amendments, drafts_of, invoices_by_period
from meterline.pipeline.ledger import PeriodLedger
from meterline.pipeline.meter import DeliveredRecord
from meterline.pipeline.processing import MeterProcessor
from meterline.ports import Store
from meterline.records import AcceptedUsage, Delivery
from meterline.topology import TABLES, USAGE_EVENTS, USAGE_TABLE
from tests.contract.conftest import FIRESTORE_PROJECT, reset_firestore
from tests.pipeline.test_cell import CATALOG, make_events, stream_vs_batch

StoreFactory = Callable[[], Store]
BATCH = 40


@pytest.fixture
def memory() -> StoreFactory:
    return lambda: MemoryStore([table.name for table in TABLES])


@pytest.fixture
def dynamodb() -> Iterator[StoreFactory]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_dynamo_tables(client, "pipeline-")
        yield lambda: DynamoStore(client, "pipeline-")


@pytest.fixture
def tables(azurite: str) -> StoreFactory:
    data_tables = pytest.importorskip(
        "azure.data.tables", reason="azure-data-tables (azure extra) is not installed"
    )
    from meterline.adapters.tables import TablesStore
    from meterline.adapters.tables import create_tables as create_azure_tables

    service = data_tables.TableServiceClient.from_connection_string(azurite)
    create_azure_tables(service, "pipeline")
    return lambda: TablesStore(service, "pipeline")


@pytest.fixture
def firestore(firestore_emulator: str) -> StoreFactory:
    cloud_firestore = pytest.importorskip(
        "google.cloud.firestore", reason="google-cloud-firestore is not installed"
    )
    from meterline.adapters.firestore import FirestoreStore

    reset_firestore(firestore_emulator)
    client = cloud_firestore.Client(project=FIRESTORE_PROJECT)
    return lambda: FirestoreStore(client, "pipeline-")


class Pipeline:
    """The four jobs on one store, with the usage stream read back from the ledger in delivery order."""

    def __init__(self, store: Store) -> None:
        self.store = store
        jobs = Jobs(CATALOG, store, MemoryPublisher())
        self.meter, self.aggregator, self.charges, self.closer = (
            jobs.meter,
            jobs.aggregator,
            jobs.charges,
            jobs.closer,
        )
        self.offset = 0
        self.aggregated: set[str] = set()

    def deliver(self, lines: list[bytes]) -> None:
        for start in range(0, len(lines), BATCH):
            records = [
                DeliveredRecord(Delivery(USAGE_EVENTS.name, 0, self.offset + i), None, line)
                for i, line in enumerate(lines[start : start + BATCH])
            ]
            self.offset += len(records)
            assert not MeterProcessor(self.meter).run(records).failed
            self.pump()

    def pump(self) -> None:
        new = [item for item in self.store.scan(USAGE_TABLE.name) if str(item["pk"]) not in self.aggregated]
        new.sort(key=lambda item: int(str(item["at"]).rsplit("|", 1)[1]))
        stream = [
            StreamRecord(str(item["at"]).rsplit("|", 1)[1] + "1", AcceptedUsage.from_item(item))
            for item in new
        ]
        self.aggregator.run(stream)
        self.aggregated.update(str(item["pk"]) for item in new)
        self.charges.run_open(datetime(2026, 11, 20, tzinfo=UTC))

    def invoices(self) -> dict[str, list[dict[str, object]]]:
        return invoices_by_period(self.store)


def gauge(name: str, at: datetime, cku: int) -> bytes:
    """A sample of org-1's cku gauge (a time-weighted meter)."""
    event = {
        "specversion": "1.0",
        "id": name,
        "source": "cell/gauge",
        "type": "kafka.status",
        "subject": "org-1",
        "time": at.isoformat().replace("+00:00", "Z"),
        "data": {"cku": cku, "partitions": 1},
    }
    return orjson.dumps(event)


def per_minute(name: str, start: datetime, minutes: int) -> list[bytes]:
    return [gauge(f"{name}{n}", start + timedelta(minutes=n), 1 + n // 20) for n in range(minutes)]


@pytest.mark.parametrize("ledger", ["memory", "dynamodb", "tables", "firestore"])
def test_the_pipeline_bills_what_meterline_rate_bills_on_every_ledger(
    ledger: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a ledger, windows sealed after every 2 open partials (so rollups are made and read),
    # two months of usage, October closed mid-November and a tail of October usage after that;
    # among it a gauge sampled every minute, whose rolled-up hours are archived, and a sample of it
    # arriving inside an archived hour in each month (the October one after October closed)
    monkeypatch.setattr(meterline.pipeline.ledger, "SEAL_AFTER_PARTIALS", 2)
    caplog.set_level(logging.INFO, logger=meterline.pipeline.ledger.__name__)
    pipeline = Pipeline(request.getfixturevalue(ledger)())
    october, november = datetime(2026, 10, 20, 10, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC)
    gauges = per_minute("oct-", october, 10) + per_minute("nov-", november, 90)
    lines = make_events(seed=41, count=240)
    lines = [line for pair in zip(lines, gauges + [b""] * len(lines), strict=False) for line in pair if line]
    late = [
        line.replace(b'"id":"e', b'"id":"late-e')
        for line in make_events(seed=42, count=60)
        if b'"time":"2026-10' in line
    ]
    late.append(gauge("oct-late", october + timedelta(minutes=4, seconds=30), 7))
    pipeline.deliver(lines)
    # AND drafts of November as of the 20th, before anything is issued
    drafts = drafts_of(pipeline.store, "org-1", Period(2026, 11))
    assert drafts and all(draft["state"] == "draft" and draft["number"] is None for draft in drafts)
    pipeline.closer.run(datetime(2026, 11, 15, tzinfo=UTC))
    pipeline.deliver([gauge("nov-late", november + timedelta(minutes=30, seconds=30), 9)])
    pipeline.deliver(late)
    # WHEN November closes too (twice: a rerun issues nothing more)
    pipeline.closer.run(datetime(2026, 12, 2, tzinfo=UTC))
    pipeline.closer.close(Period(2026, 11), datetime(2026, 12, 2, tzinfo=UTC))
    # THEN November's ledger was rolled up in several windows, and every figure of `meterline rate`
    # is billed to the cent by an invoice and its amendments
    assert PeriodLedger(CATALOG, pipeline.store, Period(2026, 11)).head().window >= 2
    invoices = pipeline.invoices()
    everything = [*lines, gauge("nov-late", november + timedelta(minutes=30, seconds=30), 9), *late]
    assert stream_vs_batch(CATALOG, pipeline.store, everything) == []
    amendments = all_amendments(pipeline.store)
    assert amendments and {a["adjusts_period"] for a in amendments} == {"2026-10"}
    # AND invoices and amendments share one gapless sequence
    documents = [*amendments, *(invoice for period in invoices.values() for invoice in period)]
    assert sorted(int(str(d["number"])) for d in documents) == list(range(1, len(documents) + 1))
    # AND the late gauge samples were placed by reading archived hours back from this store
    read_back = {str(r.args[0]) for r in caplog.records if r.msg.startswith("slow path")}  # type: ignore[index]
    assert read_back >= {"2026-10-20T10", "2026-11-05T00"}
