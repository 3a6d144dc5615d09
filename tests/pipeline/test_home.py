"""Several cells and one billing home on in-memory fakes (SPEC §8): one invoice per customer for the
whole deployment, equal to `meterline rate --usage CELL=FILE ...` over every cell, through
statements delivered twice, out of order, after issue, a home crash, two closers and a silent cell."""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterline.bootstrap import Jobs
from meterline.catalog import parse_catalog
from meterline.offline import rate_cells
from meterline.periods import Period
from meterline.pipeline.deployment import Deployment
from meterline.pipeline.invoices import all_amendments, invoices_by_period
from meterline.pipeline.meter import DeliveredRecord
from meterline.ports import Store, Write
from meterline.reconcile import differences
from meterline.records import Delivery
from meterline.topology import INVOICES_TABLE, USAGE_EVENTS
from tests.pipeline.test_cell import CATALOG_TEXT, make_events

CATALOG = parse_catalog(
    CATALOG_TEXT.replace(
        'divide_by: "1000000000", group_by: [cluster]}',
        'divide_by: "1000000000", group_by: [cluster, $region]}',
    ).replace(
        "      - meter: ingress_gb\n        model: graduated",
        '      - {meter: ingress_gb, model: per_unit, unit_price: "0.20", where: {region: eu-west-1}}\n'
        "      - meter: ingress_gb\n        model: graduated",
    )
)
CELLS = ("aws-us-east-1", "aws-eu-west-1", "gcp-europe-west1")
OCTOBER, NOVEMBER = Period(2026, 10), Period(2026, 11)
MID_NOVEMBER = datetime(2026, 11, 15, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 2, tzinfo=UTC)


def split_by_cell(lines: Sequence[bytes], seed: int) -> dict[str, list[bytes]]:
    """Each event goes to one cell, as a producer publishes it to the cell of its region."""
    rng = random.Random(seed)
    cells: dict[str, list[bytes]] = {cell: [] for cell in CELLS}
    for line in lines:
        cells[rng.choice(CELLS)].append(line)
    return cells


def deliver(deployment: Deployment, by_cell: dict[str, list[bytes]], batch: int = 97) -> None:
    """Meter each cell's events in batches (offsets never repeat), then aggregate and publish."""
    for cell, lines in by_cell.items():
        for start in range(0, len(lines), batch):
            records = [
                DeliveredRecord(Delivery(USAGE_EVENTS.name, 0, next(_offsets)), None, value)
                for value in lines[start : start + batch]
            ]
            assert not deployment.deliver(cell, records).failed
    deployment.pump()


_offsets = itertools.count()


def expected(by_cell: dict[str, list[bytes]], period: Period) -> dict[str, Any]:
    """`meterline rate --usage CELL=FILE ... --period P` over every cell's events."""
    result = rate_cells(CATALOG, by_cell, period, period)[0]
    document: dict[str, Any] = orjson.loads(orjson.dumps(result.to_json()))
    return document


def merged(*parts: dict[str, list[bytes]]) -> dict[str, list[bytes]]:
    return {cell: [line for part in parts for line in part.get(cell, [])] for cell in CELLS}


def assert_equals_rate(deployment: Deployment, by_cell: dict[str, list[bytes]]) -> None:
    invoices, amendments = invoices_by_period(deployment.home_store), all_amendments(deployment.home_store)
    for period in (OCTOBER, NOVEMBER):
        assert differences(str(period), expected(by_cell, period), invoices, amendments) == []


def test_the_home_issues_one_invoice_per_customer_equal_to_rate_over_all_cells() -> None:
    # GIVEN two months of usage spread over three cells on two clouds
    deployment = Deployment(CATALOG, CELLS)
    by_cell = split_by_cell(make_events(seed=7, count=2400), seed=1)
    deliver(deployment, by_cell)

    # WHEN both months close
    deployment.close(DECEMBER)

    # THEN one invoice per tenant and period for the whole deployment, none in any cell, and each
    # equal to `meterline rate` over every cell's file, field by field
    invoices = invoices_by_period(deployment.home_store)
    for period in ("2026-10", "2026-11"):
        assert sorted(invoice["tenant"] for invoice in invoices[period]) == ["org-1", "org-2", "org-3"]
    assert all(not list(cell.store.scan(INVOICES_TABLE.name)) for cell in deployment.cells.values())
    assert_equals_rate(deployment, by_cell)
    # AND usage from eu-west-1 is priced at its own price
    groups = [line["group"] for invoice in invoices["2026-10"] for line in invoice["lines"]]
    assert {"cluster": "a", "$region": "eu-west-1"} in groups


def test_statements_delivered_twice_and_out_of_order_count_once() -> None:
    # GIVEN the same usage in two deployments
    by_cell = split_by_cell(make_events(seed=11, count=1500), seed=2)
    in_order, shuffled = Deployment(CATALOG, CELLS), Deployment(CATALOG, CELLS)
    for deployment in (in_order, shuffled):
        deliver(deployment, by_cell)
        deployment.finalize(DECEMBER)

    # WHEN one home gets each announcement once in order, the other every one twice, shuffled
    in_order.receive()
    keys = shuffled.inbox * 2
    random.Random(3).shuffle(keys)
    shuffled.receive(keys)
    for deployment in (in_order, shuffled):
        deployment.home.close(DECEMBER)

    # THEN the same invoices, equal to rate over all cells
    assert invoices_by_period(in_order.home_store) == invoices_by_period(shuffled.home_store)
    assert_equals_rate(shuffled, by_cell)


def test_statements_of_an_issued_period_are_late_usage_billed_once() -> None:
    # GIVEN October issued in mid-November with every cell reported
    deployment = Deployment(CATALOG, CELLS)
    lines = make_events(seed=7, count=2000)
    by_cell = split_by_cell(lines, seed=4)
    deliver(deployment, by_cell)
    deployment.close(MID_NOVEMBER)
    october = invoices_by_period(deployment.home_store)["2026-10"]

    # WHEN a tail of October usage reaches one cell, is published, announced twice; November closes
    late = {"aws-eu-west-1": [line for line in make_events(seed=8, count=300) if b'"time":"2026-10' in line]}
    deliver(deployment, late)
    deployment.inbox += list(deployment.inbox)
    deployment.close(DECEMBER)

    # THEN October's invoices did not change, and the late usage is billed once, by amendments of
    # October issued with November's close (SPEC §7)
    invoices = invoices_by_period(deployment.home_store)
    assert invoices["2026-10"] == october
    amendments = all_amendments(deployment.home_store)
    assert amendments and {a["adjusts_period"] for a in amendments} == {"2026-10"}
    assert deployment.home_jobs.ingest.late >= 1  # what the home's statements_late metric counts
    assert sum(deployment.home.amendments(period) for period in (OCTOBER, NOVEMBER)) == len(amendments)
    assert_equals_rate(deployment, merged(by_cell, late))


class CrashingStore:
    """The home's store, crashing the first transaction (before anything is written) and, once,
    just after a commit."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.transactions = 0

    def transact(self, writes: Sequence[Write]) -> None:
        self.transactions += 1
        if self.transactions == 1:
            raise RuntimeError("the home crashed between merging a statement and committing it")
        self.inner.transact(writes)
        if self.transactions == 3:
            raise RuntimeError("the home crashed after committing, before it noted the statement applied")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_home_crash_between_merge_and_commit_loses_and_doubles_nothing() -> None:
    # GIVEN a home whose ingest crashes before one commit and after another
    deployment = Deployment(CATALOG, CELLS)
    by_cell = split_by_cell(make_events(seed=5, count=1200), seed=5)
    deliver(deployment, by_cell)
    deployment.finalize(DECEMBER)
    crashing = CrashingStore(deployment.home_store)
    deployment.home.ingest.store = crashing  # type: ignore[assignment]
    keys = list(deployment.inbox)

    # WHEN every announcement is retried until it goes through, as the notification's retries do
    pending = keys
    while pending:
        failed = []
        for key in pending:
            try:
                deployment.home.ingest.apply(key)
            except RuntimeError:
                failed.append(key)
        pending = failed
    deployment.inbox.clear()
    deployment.rate()
    deployment.home.close(DECEMBER)

    # THEN the invoices equal rate over all cells
    assert crashing.transactions >= 3
    assert_equals_rate(deployment, by_cell)


def test_two_home_closers_leave_one_invoice_per_customer_and_period() -> None:
    deployment = Deployment(CATALOG, CELLS)
    by_cell = split_by_cell(make_events(seed=9, count=900), seed=6)
    deliver(deployment, by_cell)
    deployment.finalize(DECEMBER)
    deployment.receive()
    twin = Jobs(
        CATALOG, deployment.home_store, deployment.publisher, statements=deployment.exchange, cells=CELLS
    ).home

    # WHEN two closers run over the same ledger
    deployment.home.close(DECEMBER)
    twin.close(DECEMBER)

    # THEN one invoice per tenant, subscription and period, each with its own number
    issued = invoices_by_period(deployment.home_store)
    keys = [(period, i["tenant"], i["subscription"]) for period, invoices in issued.items() for i in invoices]
    assert len(keys) == len(set(keys)) == 6
    assert len({i["number"] for invoices in issued.values() for i in invoices}) == 6
    assert_equals_rate(deployment, by_cell)


def test_a_silent_cell_holds_the_period_until_the_cell_wait_then_its_usage_arrives_as_late(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN October usage in every cell; gcp-europe-west1 publishes nothing and sends no final marker
    deployment = Deployment(CATALOG, CELLS)
    october = [line for line in make_events(seed=13, count=1500) if b'"time":"2026-10' in line]
    by_cell = split_by_cell(october, seed=7)
    silent = deployment.cells.pop("gcp-europe-west1")
    silent_publisher = deployment.publishers.pop("gcp-europe-west1")
    deliver(deployment, {cell: by_cell[cell] for cell in deployment.cells})

    # WHEN the home closes at end + grace (1 h), then after the cell wait (6 h more)
    caplog.set_level(logging.WARNING, logger="meterline.home")
    at_grace = deployment.close(datetime(2026, 11, 1, 1, tzinfo=UTC))
    assert "2026-10" not in invoices_by_period(deployment.home_store)
    after_wait = deployment.close(datetime(2026, 11, 1, 7, tzinfo=UTC))

    # THEN it waited, naming the silent cell, and issued October at the deadline without it
    assert [(r.issue, r.silent) for r in at_grace] == [(False, ("gcp-europe-west1",))]
    assert [(r.issue, r.silent) for r in after_wait] == [(True, ("gcp-europe-west1",))]
    alarms = [orjson.loads(record.message) for record in caplog.records]
    assert alarms[0] == {
        "metric": "silent_cells",
        "period": "2026-10",
        "count": 1,
        "cells": ["gcp-europe-west1"],
        "issued_without_them": False,
    }
    assert "2026-10" in invoices_by_period(deployment.home_store)

    # WHEN the silent cell comes back, meters its usage and publishes it, and November closes
    deployment.cells["gcp-europe-west1"] = silent
    deployment.publishers["gcp-europe-west1"] = silent_publisher
    deliver(deployment, {"gcp-europe-west1": by_cell["gcp-europe-west1"]})
    deployment.close(DECEMBER)

    # THEN its October usage was billed as late usage: the sum still equals rate over all cells
    assert_equals_rate(deployment, by_cell)


def test_the_home_issues_as_soon_as_every_cell_reported_the_period_final() -> None:
    deployment = Deployment(CATALOG, CELLS)
    by_cell = split_by_cell([line for line in make_events(seed=17, count=600) if b"2026-10" in line], seed=8)
    deliver(deployment, by_cell)
    ready = deployment.close(datetime(2026, 11, 1, 1, tzinfo=UTC))
    assert [(r.issue, r.silent) for r in ready] == [(True, ())]
    assert "2026-10" in invoices_by_period(deployment.home_store)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    count=st.integers(50, 400),
    repeats=st.integers(1, 2),
    issue_mid_november=st.booleans(),
)
def test_property_any_split_over_cells_and_any_arrival_order_bills_what_rate_bills(
    seed: int, count: int, repeats: int, issue_mid_november: bool
) -> None:
    # GIVEN random usage over random cells, announced to the home in a random order, some twice,
    # with October issued early (the rest then late) or not
    rng = random.Random(seed)
    lines = make_events(seed=seed, count=count)
    cut = rng.randrange(len(lines) + 1)
    first, second = split_by_cell(lines[:cut], seed), split_by_cell(lines[cut:], seed + 1)
    deployment = Deployment(CATALOG, CELLS, stream_batch=rng.choice([7, 50, 1000]))
    for part, when in ((first, MID_NOVEMBER), (second, DECEMBER)):
        deliver(deployment, part, batch=rng.choice([13, 97]))
        if when is MID_NOVEMBER and not issue_mid_november:
            continue
        deployment.pump()
        deployment.finalize(when)
        keys = deployment.inbox * repeats
        rng.shuffle(keys)
        deployment.receive(keys)
        deployment.home.close(when)
    # THEN the invoices and their adjustments equal rate over all cells, field by field
    assert_equals_rate(deployment, merged(first, second))
