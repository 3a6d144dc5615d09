"""`meterline demo` as `make demo` runs it: three cells on three clouds (AWS on moto, GCP on the
Firestore emulator, Azure on Azurite) and the billing home on moto's S3 and DynamoDB, small.

As in test_demo.py, the run's own self-check is checked again from its files alone: one invoice per
customer for the whole deployment, equal to `meterline rate --usage CELL=FILE ...` over every
cell's events through the amendments.
"""

from __future__ import annotations

import re
import shutil
from decimal import Decimal

import pytest

from meterline.local.breakdown import EVERY_CELL, market_breakdown
from meterline.local.cells import DEFAULT_CELLS
from meterline.local.demo import unavailable
from tests.e2e.demo_checks import (
    DemoRun,
    assert_invoices_equal_rate_through_amendments,
    assert_ledgers_count_what_was_produced,
)


@pytest.fixture(scope="module")
def cells_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: it runs Azurite, the Azure cell's stand-in")
    for cloud in ("gcp", "azure"):
        if reason := unavailable(cloud):
            pytest.skip(reason)
    out = tmp_path_factory.mktemp("demo-cells")
    # late events at 5%: enough of them arrive after their month was issued to make amendments
    return DemoRun.of(
        out, "--tenants", "4", "--events", "1200", "--seed", "7", "--late-rate", "0.05", timeout=300
    )


def test_every_cell_writes_its_own_events(cells_run: DemoRun) -> None:
    # GIVEN the default deployment's run / THEN each cell's month is in events/<cell>.ndjson
    assert cells_run.status == 0, cells_run.output
    assert sorted(cells_run.events_by_cell) == sorted(DEFAULT_CELLS)
    assert all(len(lines) == 400 for lines in cells_run.events_by_cell.values())


def test_the_homes_invoices_equal_meterline_rate_over_every_cell_through_amendments(
    cells_run: DemoRun,
) -> None:
    # GIVEN the run's invoices.json and amendments.json, issued by the home
    # WHEN compared with `meterline rate` over every cell's events
    # THEN no field of any tenant differs, both months were issued and the late tail was amended
    assert_invoices_equal_rate_through_amendments(cells_run)


def test_one_invoice_per_customer_and_subscription_for_the_whole_deployment(cells_run: DemoRun) -> None:
    # GIVEN the same run / THEN each (tenant, subscription) has one invoice a month, not one per cell
    for period, invoices in cells_run.invoices.items():
        keys = [(invoice["tenant"], invoice["subscription"]) for invoice in invoices]
        assert len(keys) == len(set(keys)), period
    # AND the lines of a meter grouped by market carry every cell's cloud and region
    markets = {
        (line["group"]["$cloud"], line["group"]["$region"])
        for invoices in cells_run.invoices.values()
        for invoice in invoices
        for line in invoice["lines"]
        if "$region" in line["group"]
    }
    assert markets <= {tuple(cell.split("-", 1)) for cell in DEFAULT_CELLS}
    assert len(markets) >= 2


def test_the_ledgers_of_every_cell_reconcile_with_what_was_produced(cells_run: DemoRun) -> None:
    # GIVEN the same run / WHEN every cell's ledger counts are summed beside `meterline rate`'s
    # THEN each month's summary is rate's, reason by reason
    assert_ledgers_count_what_was_produced(cells_run)


def test_the_report_breaks_each_invoice_down_by_region_and_the_run_prints_its_throughput(
    cells_run: DemoRun,
) -> None:
    # GIVEN the same run / THEN its report has each invoice by region, adding up to its subtotal
    report = (cells_run.out / "report.html").read_text()
    assert "Each invoice by region" in report
    for invoices in cells_run.invoices.values():
        for invoice in invoices:
            assert sum(market_breakdown(invoice).values(), Decimal(0)) == Decimal(invoice["subtotal"])
    # AND in the report each row's regions add up to its subtotal, and lines of meters not grouped
    # by region are attributed to the cells their usage came from: "every cell" holds less than it
    # would if no line were attributed
    section = report.split("<h2>Each invoice by region</h2>", 1)[1]
    attributed = 0
    for period, invoices in cells_run.invoices.items():
        table = section.split(f"<h3>{period}</h3>", 1)[1].split("</table>", 1)[0]
        head = re.findall(r"<th>([^<]*)</th>", table)
        rows = [re.findall(r"<td>([^<]*)</td>", row) for row in table.split("<tr>")[2:]]
        for invoice, row in zip(invoices, rows, strict=True):
            amounts = dict(zip(head, row, strict=True))
            parts = [Decimal(amounts[column].replace(",", "")) for column in head[1:-1]]
            assert sum(parts, Decimal(0)) == Decimal(invoice["subtotal"]), (period, invoice["tenant"])
            unattributed = market_breakdown(invoice).get(EVERY_CELL, Decimal(0))
            attributed += Decimal(amounts[EVERY_CELL].replace(",", "")) < unattributed
    assert attributed > 0
    # AND the terminal shows each stage's throughput per cell, and the home's
    assert "Throughput per stage" in cells_run.output
    assert "ingest" in cells_run.output
