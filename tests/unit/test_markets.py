"""Markets (SPEC §8): cells stamp $cloud and $region on their measurements, charges with `where`
price them by market, and tiers count usage from all cells together. Hand-computed cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from meterline.adapters.memory import MemoryPublisher
from meterline.markets import Market
from meterline.offline import rate_cells
from meterline.periods import Period
from meterline.pipeline.cell import Cell
from meterline.pipeline.close import invoices_by_period
from meterline.pipeline.meter import DeliveredRecord
from meterline.records import Delivery
from meterline.topology import USAGE_EVENTS
from tests.helpers import NOVEMBER, catalog, event, invoice_of

REGIONAL = catalog(
    """
    meters:
      - {key: ingress_gb, event_type: kafka.ingress, aggregation: sum, value: gb}
      - {key: egress_gb, event_type: kafka.egress, aggregation: sum, value: gb, group_by: [$cloud, $region]}
      - {key: storage_gb, event_type: kafka.storage, aggregation: sum, value: gb, group_by: [$cloud]}
    plans:
      - key: standard
        effective_from: "2026-01-01"
        currency: USD
        charges:
          - meter: ingress_gb
            model: graduated
            tiers: [{up_to: "100", unit_price: "0.10"}, {up_to: null, unit_price: "0.05"}]
          - {meter: egress_gb, model: per_unit, unit_price: "0.09", where: {cloud: aws, region: ap-south-1}}
          - {meter: egress_gb, model: per_unit, unit_price: "0.07", where: {cloud: [gcp, azure]}}
          - {meter: egress_gb, model: per_unit, unit_price: "0.05"}
          - meter: storage_gb
            model: graduated
            where: {cloud: aws}
            tiers: [{up_to: "100", unit_price: "0.10"}, {up_to: null, unit_price: "0.05"}]
    customers:
      - {tenant: org-42, plan: standard}
      - tenant: org-7
        plan: standard
        charges:
          - {meter: egress_gb, model: per_unit, unit_price: "0.01", where: {region: ap-south-1}}
    """
)


def rate_by_cell(cells: dict[str, list[str]], period: Period = NOVEMBER) -> dict[str, Any]:
    """`meterline rate --usage CELL=FILE ...` as the JSON document it prints."""
    result = rate_cells(REGIONAL, cells, period, period)[0]
    document: dict[str, Any] = json.loads(json.dumps(result.to_json()))
    return document


def usage(meter_type: str, gb: str, number: int, tenant: str = "org-42") -> str:
    return event(f"e{number}", {"gb": gb}, type=meter_type, subject=tenant)


def test_a_customer_with_usage_in_two_cells_gets_the_tier_prices_of_the_sum() -> None:
    # GIVEN 80 GB of ingress in an AWS cell and 60 GB in a GCP cell (tiers: 100 at 0.10, then 0.05)
    cells = {
        "aws-us-east-1": [usage("kafka.ingress", "80", 1)],
        "gcp-europe-west1": [usage("kafka.ingress", "60", 1)],  # the same id: dedup is per cell
    }

    # WHEN both cells are rated together
    invoice = invoice_of(rate_by_cell(cells))

    # THEN one line of 140 GB: 100 x 0.10 + 40 x 0.05 = 12.00 (not 8.00 + 6.00 = 14.00 per cell)
    assert [(line["meter"], line["quantity"], line["amount"]) for line in invoice["lines"]] == [
        ("ingress_gb", "140", "12.00")
    ]
    assert invoice["total"] == "12.00"


def test_each_market_is_priced_by_the_first_charge_whose_where_matches_it() -> None:
    # GIVEN 100 GB of egress in each of four cells: AWS Mumbai, AWS Virginia, GCP Mumbai, and a
    # bare file (the cell local)
    cells = {
        "aws-ap-south-1": [usage("kafka.egress", "100", 1)],
        "aws-us-east-1": [usage("kafka.egress", "100", 1)],
        "gcp-asia-south1": [usage("kafka.egress", "100", 1)],
        "local": [usage("kafka.egress", "100", 1)],
    }

    # WHEN rated
    invoice = invoice_of(rate_by_cell(cells))

    # THEN each line names its market and carries that market's price: 0.09 for AWS ap-south-1,
    # 0.07 for GCP, 0.05 (the charge without where) for the rest
    assert [(line["group"], line["amount"]) for line in invoice["lines"]] == [
        ({"$cloud": "aws", "$region": "ap-south-1"}, "9.00"),
        ({"$cloud": "aws", "$region": "us-east-1"}, "5.00"),
        ({"$cloud": "gcp", "$region": "asia-south1"}, "7.00"),
        ({"$cloud": "local", "$region": "local"}, "5.00"),
    ]
    assert invoice["subtotal"] == "26.00"


def test_tiers_of_a_line_count_the_usage_of_every_cell_in_its_market() -> None:
    # GIVEN storage grouped by cloud: 70 GB in each of two AWS regions, 50 GB on Azure
    cells = {
        "aws-us-east-1": [usage("kafka.storage", "70", 1)],
        "aws-eu-west-1": [usage("kafka.storage", "70", 1)],
        "azure-eastus": [usage("kafka.storage", "50", 1)],
    }

    # WHEN rated
    invoice = invoice_of(rate_by_cell(cells))

    # THEN the AWS line holds both regions' 140 GB under one set of tiers: 100 x 0.10 + 40 x 0.05;
    # Azure matches no charge of the plan, so the plan does not price it (as an unpriced meter)
    assert [(line["group"], line["quantity"], line["amount"]) for line in invoice["lines"]] == [
        ({"$cloud": "aws"}, "140", "12.00")
    ]


def test_a_contract_pricing_a_meter_replaces_every_market_charge_the_plan_has_for_it() -> None:
    # GIVEN org-7's contract prices egress only in ap-south-1 (whatever the cloud)
    cells = {
        "aws-ap-south-1": [usage("kafka.egress", "100", 1, "org-7")],
        "gcp-us-central1": [usage("kafka.egress", "100", 1, "org-7")],
    }

    # WHEN rated
    invoice = invoice_of(rate_by_cell(cells), "org-7")

    # THEN Mumbai is billed at the contract's 0.01, and the plan's egress prices no longer apply
    assert [(line["group"], line["amount"]) for line in invoice["lines"]] == [
        ({"$cloud": "aws", "$region": "ap-south-1"}, "1.00")
    ]


@pytest.mark.parametrize(
    ("cell", "market"),
    [
        ("aws-us-east-1", Market("aws", "us-east-1")),
        ("gcp-europe-west1", Market("gcp", "europe-west1")),
        ("azure-eastus", Market("azure", "eastus")),
        ("local", Market("local", "local")),
        ("east", Market("east", "east")),
    ],
)
def test_a_cell_name_is_its_cloud_then_its_region(cell: str, market: Market) -> None:
    assert Market.of_cell(cell) == market


def test_the_pipeline_cell_stamps_its_own_market_on_what_it_measures() -> None:
    # GIVEN a pipeline cell named gcp-asia-south1 metering one egress event of November
    cell = Cell(REGIONAL, MemoryPublisher(), name="gcp-asia-south1")
    record = DeliveredRecord(
        Delivery(USAGE_EVENTS.name, 0, 0), None, usage("kafka.egress", "100", 1).encode()
    )
    assert cell.deliver([record]).accepted == 1

    # WHEN November closes
    cell.close(datetime(2026, 12, 2, tzinfo=UTC))

    # THEN its invoice prices the usage as GCP's, as `meterline rate` does for that cell's file
    invoice = invoice_of({"invoices": invoices_by_period(cell.store)["2026-11"]})
    expected = invoice_of(rate_by_cell({"gcp-asia-south1": [usage("kafka.egress", "100", 1)]}))
    assert [(line["group"], line["amount"]) for line in invoice["lines"]] == [
        ({"$cloud": "gcp", "$region": "asia-south1"}, "7.00")
    ]
    assert invoice["lines"] == expected["lines"]
