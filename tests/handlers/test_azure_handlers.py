"""Azure handler tests: the functions the Function App registers, called with Event Hubs batches
(fixtures from tests/events/azure) and timers, on an in-memory store and publisher."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import orjson
import pytest
from azure.functions.meta import Datum
from azure.functions.timer import TimerRequest

from meterline.adapters import azure_functions
from meterline.adapters.azure_functions import NotYetMeteredError, event_hubs_oauth_config
from meterline.adapters.memory import MemoryExchange, MemoryPublisher, StreamingMemoryStore
from meterline.bootstrap import Jobs
from meterline.catalog import load_catalog
from meterline.local import runtime
from meterline.pipeline.invoices import invoices_by_period
from meterline.pipeline.ledger import PARTIAL
from meterline.pipeline.processing import MAX_ATTEMPTS
from meterline.ports import RetriableStoreError, StoreError
from meterline.topology import (
    AGGREGATES_TABLE,
    BILLING_ALERTS,
    BILLING_INVOICES,
    TABLES,
    USAGE_REJECTED,
)
from tests.handlers.conftest import load_handler, outcomes
from tests.pipeline.test_cell import make_events, stream_vs_batch

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events" / "azure"
CATALOG = ROOT / "tests" / "events" / "aws" / "catalog.yaml"

Function = Callable[..., None]


def hub_batch(partition: str, events: list[dict[str, Any]]) -> list[func.EventHubEvent]:
    """Events as the worker hands a cardinality=many trigger: one partition, shared metadata."""
    metadata = {
        "PartitionContext": Datum(json.dumps({"PartitionId": partition, "ConsumerGroup": "$Default"}), "json")
    }
    return [
        func.EventHubEvent(
            body=base64.b64decode(event["body"]),
            trigger_metadata=metadata,
            sequence_number=event["sequence_number"],
            offset=event.get("offset"),
            partition_key=event.get("partition_key"),
        )
        for event in events
    ]


def fixture_batch(partition: str) -> list[func.EventHubEvent]:
    loaded = json.loads((EVENTS / f"usage_events_partition_{partition}.json").read_text())
    return hub_batch(loaded["partition_id"], loaded["events"])


def line_batch(partition: str, first: int, lines: list[bytes]) -> list[func.EventHubEvent]:
    events = [
        {"sequence_number": first + n, "body": base64.b64encode(line).decode()}
        for n, line in enumerate(lines)
    ]
    return hub_batch(partition, events)


@dataclass
class AzureCell:
    store: StreamingMemoryStore
    publisher: MemoryPublisher
    jobs: Jobs

    def function(self, job: str) -> Function:
        """The job's function as the Function App runs it (unwrapped from its blueprint), with the
        cell's jobs."""
        module = load_handler(job, "azure")
        module.jobs.use(self.jobs)
        user_function: Function = module.handler.build().get_user_function()
        return user_function


@pytest.fixture
def azure_cell() -> AzureCell:
    store = StreamingMemoryStore([t.name for t in TABLES], [t.name for t in TABLES if t.stream is not None])
    publisher = MemoryPublisher()
    # Azure Tables and Event Hubs are faked; the clock stands after November's grace
    jobs = Jobs(load_catalog(CATALOG), store, publisher, lambda: datetime(2026, 12, 2, tzinfo=UTC))
    return AzureCell(store, publisher, jobs)


def aggregates(store: StreamingMemoryStore, sk_prefix: str) -> list[dict[str, Any]]:
    return [item for item in store.scan(AGGREGATES_TABLE.name) if str(item["sk"]).startswith(sk_prefix)]


def timer() -> TimerRequest:
    return TimerRequest(past_due=False)


def test_meter_accepts_dedups_and_dead_letters_each_partitions_batch(azure_cell: AzureCell) -> None:
    # GIVEN the mixed batch as two Event Hubs batches, partitions 0 and 3
    meter = azure_cell.function("meter")
    # WHEN each batch is metered
    meter(fixture_batch("0"))
    meter(fixture_batch("3"))
    # THEN three events are accepted and each other record has an outcome under its sequence number
    assert sorted(str(u["at"]) for u in azure_cell.store.scan("usage")) == [
        "usage.events|0|100",
        "usage.events|3|100",
        "usage.events|3|101",
    ]
    assert outcomes(azure_cell.store) == [
        ("usage.events|0", "00000000000000000101", "duplicate", "duplicate"),
        ("usage.events|0", "00000000000000000102", "rejected", "conflict"),
        ("usage.events|0", "00000000000000000103", "rejected", "malformed"),
        ("usage.events|0", "00000000000000000104", "rejected", "malformed"),
        ("usage.events|3", "00000000000000000102", "rejected", "unknown_type"),
    ]
    rejected = azure_cell.publisher.on(USAGE_REJECTED.name)
    assert sorted(m.headers["reason"] for m in rejected) == [
        b"conflict",
        b"malformed",
        b"malformed",
        b"unknown_type",
    ]


def test_a_rerun_batch_reaches_the_same_outcomes(azure_cell: AzureCell) -> None:
    meter = azure_cell.function("meter")
    meter(fixture_batch("0"))
    before = (outcomes(azure_cell.store), sorted(str(u["at"]) for u in azure_cell.store.scan("usage")))
    # WHEN the retry policy runs the same batch again
    meter(fixture_batch("0"))
    # THEN nothing changes
    assert (
        outcomes(azure_cell.store),
        sorted(str(u["at"]) for u in azure_cell.store.scan("usage")),
    ) == before


def test_store_failure_stops_the_partition_and_raises_so_the_batch_runs_again(
    azure_cell: AzureCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a store that throttles the outcomes ledger (the second record of partition 0 is a duplicate)
    meter = azure_cell.function("meter")
    real_put = StreamingMemoryStore.put

    def throttled(store: StreamingMemoryStore, table: str, item: Any) -> None:
        if table == "outcomes":
            raise RetriableStoreError("TooManyRequests")
        real_put(store, table, item)

    with monkeypatch.context() as patch:
        patch.setattr(StreamingMemoryStore, "put", throttled)
        # WHEN the batch runs THEN it raises, and nothing after the failed record was metered
        with pytest.raises(RetriableStoreError):
            meter(fixture_batch("0"))
    assert [str(u["at"]) for u in azure_cell.store.scan("usage")] == ["usage.events|0|100"]
    assert azure_cell.publisher.on(USAGE_REJECTED.name) == []
    # AND the rerun completes with the outcomes of an undisturbed run
    meter(fixture_batch("0"))
    assert [o[2:] for o in outcomes(azure_cell.store)] == [
        ("duplicate", "duplicate"),
        ("rejected", "conflict"),
        ("rejected", "malformed"),
        ("rejected", "malformed"),
    ]


def test_a_record_the_store_keeps_refusing_is_dead_lettered_and_the_batch_completes(
    azure_cell: AzureCell, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a store that refuses the first record's usage entity every time (not an outage)
    meter = azure_cell.function("meter")
    real_put_new = StreamingMemoryStore.put_new

    def refusing(store: StreamingMemoryStore, table: str, item: Any) -> Any:
        if table == "usage" and item.get("at") == "usage.events|0|100":
            raise StoreError("PropertyValueTooLarge")
        return real_put_new(store, table, item)

    monkeypatch.setattr(StreamingMemoryStore, "put_new", refusing)
    # WHEN the retry policy runs the batch until it completes
    for _ in range(MAX_ATTEMPTS - 1):
        with pytest.raises(StoreError):
            meter(fixture_batch("0"))
    meter(fixture_batch("0"))
    # THEN the record is dead-lettered with its attempts, and the rest of the batch has its outcomes:
    # the same event delivered again right after it is now the one that stands
    assert [o[1:] for o in outcomes(azure_cell.store)] == [
        ("00000000000000000100", "rejected", "unprocessable"),
        ("00000000000000000102", "rejected", "conflict"),
        ("00000000000000000103", "rejected", "malformed"),
        ("00000000000000000104", "rejected", "malformed"),
    ]
    assert [str(u["at"]) for u in azure_cell.store.scan("usage")] == ["usage.events|0|101"]
    [dead, *_] = azure_cell.publisher.on(USAGE_REJECTED.name)
    assert (dead.headers["reason"], dead.headers["attempts"]) == (b"unprocessable", b"%d" % MAX_ATTEMPTS)


def test_aggregate_waits_for_meter_then_applies_each_partition_once(azure_cell: AzureCell) -> None:
    # GIVEN two partitions whose batches have the same sequence numbers
    meter, aggregate = azure_cell.function("meter"), azure_cell.function("aggregate")
    # WHEN aggregate reaches partition 0 before meter does THEN it raises and writes nothing
    with pytest.raises(NotYetMeteredError, match=r"usage.events\|0\|100"):
        aggregate(fixture_batch("0"))
    assert list(azure_cell.store.scan(AGGREGATES_TABLE.name)) == []
    # WHEN meter has run, and aggregate runs each batch twice (a retried invocation)
    meter(fixture_batch("0"))
    meter(fixture_batch("3"))
    for _ in range(2):
        aggregate(fixture_batch("0"))
        aggregate(fixture_batch("3"))
    # THEN each partition's batch has one marker and one partial: org-1's event, org-2's two
    assert len(aggregates(azure_cell.store, "batch|")) == 2
    assert sorted(int(p["tenants"]) for p in aggregates(azure_cell.store, PARTIAL)) == [1, 1]
    # AND rating counts every event of both: org-2 is 0.25 GB, 2 CKU from Nov 3 10:15, 120 partitions
    azure_cell.function("rate")(timer())
    running = {
        str(c["pk"]): c["subtotal"]
        for c in azure_cell.store.scan("charges")
        if str(c["sk"]).endswith("running")
    }
    assert running == {"org-1": "10.10", "org-2": "1997.28"}


def test_aggregate_sets_aside_a_usage_entity_it_cannot_read_and_applies_the_rest(
    azure_cell: AzureCell,
) -> None:
    # GIVEN partition 3 metered, and the usage entity of its first record damaged since
    azure_cell.function("meter")(fixture_batch("3"))
    damaged = next(item for item in azure_cell.store.scan("usage") if item["at"] == "usage.events|3|100")
    azure_cell.store.put("usage", {**damaged, "m": b"not json"})
    # WHEN aggregate runs the batch, and runs it again
    aggregate = azure_cell.function("aggregate")
    for _ in range(2):
        aggregate(fixture_batch("3"))
    # THEN the other accepted record is applied once, and the damaged one is filed under `dead`
    [partial] = aggregates(azure_cell.store, PARTIAL)
    assert int(partial["tenants"]) == 1
    [dead] = [item for item in azure_cell.store.scan(AGGREGATES_TABLE.name) if item["pk"] == "dead"]
    assert dead["delivery"] == "usage.events|3|100" and "JSONDecodeError" in str(dead["error"])


def test_rate_timer_announces_each_spend_alert_once(azure_cell: AzureCell) -> None:
    # GIVEN org-1's 1 GB aggregated (0.10 spent, over its 0.05 alert)
    azure_cell.function("meter")(fixture_batch("0"))
    azure_cell.function("aggregate")(fixture_batch("0"))
    rate = azure_cell.function("rate")
    # WHEN the timer fires twice
    rate(timer())
    rate(timer())
    # THEN the running charge is stored and the alert published once
    assert [orjson.loads(m.value)["threshold"] for m in azure_cell.publisher.on(BILLING_ALERTS.name)] == [
        "0.05"
    ]
    [running] = [c for c in azure_cell.store.scan("charges") if str(c["sk"]).endswith("running")]
    assert running["pk"] == "org-1" and running["spend"] == "10.10"


def test_meter_aggregate_rate_close_chain_bills_what_meterline_rate_bills(azure_cell: AzureCell) -> None:
    # GIVEN two months of generated usage over two partitions, in batches, the first retried
    functions = {job: azure_cell.function(job) for job in ("meter", "aggregate", "rate", "close")}
    lines = make_events(seed=12, count=240)
    batches = [
        line_batch(str(n % 2), 1000 + n * 25, lines[n * 25 : (n + 1) * 25])
        for n in range(len(lines) // 25 + 1)
    ]
    batches = [batches[0], *batches]
    # WHEN meter and aggregate consume every batch, and the timers fire after November's grace
    for batch in batches:
        functions["meter"](batch)
        functions["aggregate"](batch)
        functions["rate"](timer())
    functions["close"](timer())
    # THEN October and November invoices equal `meterline rate` on the same records
    catalog = load_catalog(CATALOG)
    invoices = invoices_by_period(azure_cell.store)
    assert sorted(invoices) == ["2026-10", "2026-11"]
    assert stream_vs_batch(catalog, azure_cell.store, lines) == []
    assert len(azure_cell.publisher.on(BILLING_INVOICES.name)) == 4


def test_function_app_registers_the_cell_jobs_and_the_local_rate_and_close_with_their_triggers() -> None:
    app = ROOT / "functions" / "function_app.py"
    module = runtime.load_function(app, "function_app_under_test", "the function app")
    triggers = {}
    for function in module.app.get_functions():
        [binding] = function.get_bindings_dict()["bindings"]
        triggers[function.get_function_name()] = (
            binding["type"],
            binding.get("eventHubName") or binding.get("schedule"),
            binding.get("consumerGroup"),
        )
    assert triggers == {
        "meter": ("eventHubTrigger", "usage.events", None),
        "aggregate": ("eventHubTrigger", "usage.events", "aggregate"),
        "publish": ("timerTrigger", "0 */5 * * * *", None),
        "rate": ("timerTrigger", "0 */5 * * * *", None),
        "close": ("timerTrigger", "0 15 * * * *", None),
    }


def test_event_hubs_kafka_config_asks_entra_for_the_namespaces_token() -> None:
    @dataclass
    class Token:
        token: str
        expires_on: int

    asked: list[str] = []

    class Credential:
        def get_token(self, *scopes: str) -> Token:
            asked.extend(scopes)
            return Token("eyJ0", 1_800_000_000)

    oauth = event_hubs_oauth_config("ns.servicebus.windows.net:9093", Credential())
    assert oauth["oauth_cb"]("") == ("eyJ0", 1_800_000_000.0)
    assert asked == ["https://ns.servicebus.windows.net/.default"]


def test_a_batch_without_partition_context_is_a_one_line_trigger_error(azure_cell: AzureCell) -> None:
    events = [func.EventHubEvent(body=b"{}", sequence_number=1)]
    with pytest.raises(azure_functions.TriggerError, match="PartitionId"):
        azure_cell.function("meter")(events)


def test_publish_timer_puts_each_partial_once_under_the_cells_name_and_reports_months_final(
    azure_cell: AzureCell,
) -> None:
    # GIVEN a cell named azure-westeurope that metered and aggregated two partitions' usage, and the
    # home's exchange (a fake: the S3 side has its own contract suite)
    exchange = MemoryExchange()
    azure_cell.jobs.cell, azure_cell.jobs.statements = "azure-westeurope", exchange
    meter, aggregate = azure_cell.function("meter"), azure_cell.function("aggregate")
    for partition in ("0", "3"):
        meter(fixture_batch(partition))
        aggregate(fixture_batch(partition))
    # WHEN the publish timer fires after November's grace, twice
    publish = azure_cell.function("publish")
    publish(timer())
    published = sorted(exchange.objects)
    publish(timer())
    # THEN each partial's statement and each month's final marker stand under the cell's prefix, once
    partials = [p for p in aggregates(azure_cell.store, PARTIAL) if str(p["pk"]).startswith("period|")]
    assert sorted(exchange.objects) == published
    assert all(key.startswith("statements/azure-westeurope/") for key in published)
    assert [key for key in published if key.endswith("final.json")] == [
        "statements/azure-westeurope/2026-10/final.json",
        "statements/azure-westeurope/2026-11/final.json",
    ]
    assert len(published) == len(partials) + 2
