"""The cost model: hand-computed stacks, unpriced items reported, volume sweeps."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path

import pytest

from infra.cost.chart import volume_sweep
from infra.cost.inputs import CostInputsError, parse_cost_inputs
from infra.cost.measured import load_figures
from infra.cost.model import estimate
from infra.cost.prices import load_price_book
from tests.infra.cost_fixtures import (
    AWS_STACK,
    SMALL_STACK,
    TEST_FIGURES,
    stack,
    write_test_figures,
    write_test_prices,
)


def test_small_stack_costs_what_the_paper_says(tmp_path: Path) -> None:
    # GIVEN the small stack priced with round test prices and test figures
    prices, figures = write_test_prices(tmp_path), write_test_figures(tmp_path)
    inputs = parse_cost_inputs(SMALL_STACK, "small stack")

    # WHEN it is estimated at its configured 10 events/s
    cost = estimate(inputs, prices, figures)

    # THEN fixed, per month and independent of volume:
    #   MSK cluster      1 × 730 h × 0.75            = 547.50
    #   MSK partitions   2 × 730 h × 0.0015          =   2.19
    #   alarms           5 × 0.10                    =   0.50
    #                                                  ------
    #                                                  550.19
    assert cost.fixed_usd_month == Decimal("550.19")
    # AND per million events:
    #   Kafka record = 1000 B event + 24 B overhead = 1024 B; 1e6 records = 1.024e9 B
    #     = 1e6 / 2^20 GB = 0.95367431640625 GB
    #   MSK in 0.10 + out (1 read) 0.05 + storage (73 h / 730 h = 0.1 month) × 0.10 = 0.16 per GB
    #     0.95367431640625 × 0.16                                        = 0.152587890625
    #   Lambda requests   2000 × 0.20 / 1e6                               = 0.0004
    #   Lambda GB-s       4000 × 0.00001                                  = 0.04
    #   DynamoDB writes   1e6 WRU × 0.625 / 1e6                           = 0.625
    #   DynamoDB reads    0 RRU                                           = 0
    #   DynamoDB storage  1e6 × 1073.741824 B = 1 GB, kept 365 days = 365 / (730/24) = 12 months
    #                     12 GB-month × 0.25                              = 3.00
    #   PITR              12 GB-month × 0.20                              = 2.40
    #   stream reads      free for a Lambda trigger                       = 0
    #   sum: 0.152587890625 + 0.0404 + 0.625 + 3.00 + 2.40                = 6.217987890625
    assert cost.usd_per_million_events == Decimal("6.217987890625")
    # AND at 10 events/s × 2,628,000 s/month = 26.28 million events:
    #   550.19 + 6.217987890625 × 26.28 = 550.19 + 163.408721765625 = 713.598721765625
    assert cost.events_per_month == Decimal("26280000")
    assert cost.total_usd_month() == Decimal("713.598721765625")
    assert cost.complete and not cost.over_budget


def test_small_stack_breaks_down_by_service_and_the_parts_add_up(tmp_path: Path) -> None:
    # GIVEN the small stack
    cost = estimate(
        parse_cost_inputs(SMALL_STACK, "s"), write_test_prices(tmp_path), write_test_figures(tmp_path)
    )

    # WHEN it is broken down by service
    services = {name: (fixed, variable, total) for name, fixed, variable, total in cost.by_service()}

    # THEN MSK carries the fixed cost (547.50 + 2.19) and DynamoDB most of the variable cost (0.625 + 3 + 2.4)
    assert services["msk"][0] == Decimal("549.69")
    assert services["dynamodb"][1] == Decimal("6.025")
    assert services["cloudwatch"] == (Decimal("0.50"), Decimal(0), Decimal("0.50"))
    # AND the services add up to the stack's totals
    assert sum(s[0] for s in services.values()) == cost.fixed_usd_month
    assert sum(s[1] for s in services.values()) == cost.usd_per_million_events
    assert sum(s[2] for s in services.values()) == cost.total_usd_month()


def test_what_if_volume_changes_only_the_variable_part(tmp_path: Path) -> None:
    # GIVEN the small stack priced at a what-if volume of 100 events/s
    prices, figures = write_test_prices(tmp_path), write_test_figures(tmp_path)
    inputs = parse_cost_inputs(SMALL_STACK, "s")
    cost = estimate(inputs, prices, figures, events_per_second=Decimal(100))

    # THEN fixed and per-million costs are those of the configured volume, the total is 262.8M events' worth
    assert cost.what_if and cost.events_per_second == Decimal(100)
    assert cost.fixed_usd_month == Decimal("550.19")
    # 550.19 + 6.217987890625 × 262.8 = 550.19 + 1634.08721765625
    assert cost.total_usd_month() == Decimal("2184.27721765625")


def test_unknown_region_is_reported_unpriced_not_zeroed() -> None:
    # GIVEN the full AWS stack in a region the price file does not list
    inputs = parse_cost_inputs(stack(AWS_STACK, region="xx-mars-1"), "mars")

    # WHEN it is estimated with the committed prices
    cost = estimate(inputs, load_price_book(), load_figures())

    # THEN nothing is priced, every item says why, and the estimate is marked incomplete
    assert cost.lines == ()
    assert not cost.complete
    reasons = [entry.reason for entry in cost.unpriced]
    assert "no aws price rows for this region" in reasons
    assert any(r == "no price row for aws/msk/serverless_cluster_hour in region xx-mars-1" for r in reasons)
    assert len(cost.unpriced) > 20


def test_unknown_kind_is_reported_while_the_rest_is_priced(tmp_path: Path) -> None:
    # GIVEN the small stack with a resource kind that has no cost rule
    resources = [*SMALL_STACK["resources"], {"kind": "opensearch_domain", "name": "search"}]
    inputs = parse_cost_inputs(stack(SMALL_STACK, resources=resources), "s")

    # WHEN it is estimated
    cost = estimate(inputs, write_test_prices(tmp_path), write_test_figures(tmp_path))

    # THEN the kind is listed as unpriced with its reason and the known kinds keep their cost
    assert [(e.resource, e.reason) for e in cost.unpriced] == [
        ("opensearch_domain search", "no cost rule for aws kind 'opensearch_domain'")
    ]
    assert cost.fixed_usd_month == Decimal("550.19")


def test_another_clouds_kinds_are_unpriced_until_their_rules_exist() -> None:
    # GIVEN a stack on a cloud the model has no rules or price rows for
    inputs = parse_cost_inputs(
        stack(SMALL_STACK, cloud="oci", region="us-ashburn-1", resources=[{"kind": "streaming_pool"}]),
        "oci",
    )

    # WHEN it is estimated with the committed prices
    cost = estimate(inputs, load_price_book(), load_figures())

    # THEN both the region and the kind are reported, and nothing counts as zero cost
    assert {e.reason for e in cost.unpriced} == {
        "no oci price rows for this region",
        "no cost rule for oci kind 'streaming_pool'",
    }
    assert cost.lines == ()


def test_missing_figure_leaves_that_line_unpriced(tmp_path: Path) -> None:
    # GIVEN test figures without the usage table's write units
    figures = {name: entry for name, entry in TEST_FIGURES.items() if name != "dynamodb.usage.write_units"}
    cost = estimate(
        parse_cost_inputs(SMALL_STACK, "s"),
        write_test_prices(tmp_path),
        write_test_figures(tmp_path, figures),
    )

    # THEN the writes (and the stream reads they drive) are unpriced, naming the figure: 0.625 less per M
    assert {e.resource for e in cost.unpriced} == {"usage writes", "usage stream reads"}
    assert all("'dynamodb.usage.write_units'" in e.reason for e in cost.unpriced)
    assert cost.usd_per_million_events == Decimal("6.217987890625") - Decimal("0.625")


def test_provisioned_table_and_logs_without_retention_are_unpriced_with_reasons() -> None:
    # GIVEN a provisioned table and a log group that never expires
    resources = [
        {"kind": "dynamodb_table", "name": "usage", "billing": "provisioned"},
        {"kind": "cloudwatch_log_group", "name": "/aws/lambda/meter", "job": "meter"},
    ]
    cost = estimate(
        parse_cost_inputs(stack(AWS_STACK, resources=resources), "s"), load_price_book(), load_figures()
    )

    # THEN each is reported, and the log ingestion that can be priced is
    reasons = {e.resource: e.reason for e in cost.unpriced}
    assert "only on_demand is modelled" in reasons["dynamodb_table usage"]
    assert "keeps logs forever" in reasons["logs meter storage"]
    assert [line.item for line in cost.lines] == ["logs meter ingestion"]


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-south-1"])
def test_committed_prices_and_figures_price_the_whole_aws_cell(region: str) -> None:
    # GIVEN the AWS cell in each region with a stack
    inputs = parse_cost_inputs(stack(AWS_STACK, region=region), region)

    # WHEN it is estimated with the committed price rows and design estimates
    cost = estimate(inputs, load_price_book(), load_figures())

    # THEN every resource is priced and both parts of the cost are positive
    assert cost.unpriced == ()
    assert cost.fixed_usd_month > 0 and cost.usd_per_million_events > 0
    # AND the stream read by Lambda shows as a free line rather than being left out
    free = [line for line in cost.lines if line.price.sku == "stream_read_request_lambda"]
    assert free and all(line.usd_per_million == 0 and "free" in line.note for line in free)


def test_volume_sweep_is_monotonic_for_every_region() -> None:
    # GIVEN the AWS cell in three regions
    costs = [
        estimate(parse_cost_inputs(stack(AWS_STACK, region=r), r), load_price_book(), load_figures())
        for r in ("us-east-1", "eu-west-1", "ap-south-1")
    ]

    # WHEN each is priced across the chart's volume sweep
    sweep = volume_sweep(costs)

    # THEN the sweep starts at zero volume (the fixed cost) and cost rises strictly with volume
    assert sweep[0] == 0 and sweep[-1] == Decimal(400)
    for cost in costs:
        totals = [cost.total_usd_month(eps) for eps in sweep]
        assert totals[0] == cost.fixed_usd_month
        assert all(low < high for low, high in itertools.pairwise(totals))


def test_scheduled_function_is_a_fixed_cost(tmp_path: Path) -> None:
    # GIVEN a close function priced per scheduled invocation, scheduled 720 times a month
    resources = [
        {"kind": "lambda_function", "name": "close", "job": "close", "architecture": "arm64"},
        {"kind": "scheduler_schedule", "name": "close", "invocations_per_month": 720},
    ]
    figures = {
        "lambda.close.requests": {"value": "1", "per": "invocation"},
        "lambda.close.gb_seconds": {"value": "10", "per": "invocation"},
    }
    cost = estimate(
        parse_cost_inputs(stack(SMALL_STACK, resources=resources), "s"),
        write_test_prices(tmp_path),
        write_test_figures(tmp_path, figures),
    )

    # THEN 720 requests × 0.20/1e6 = 0.000144 and 7200 GB-s × 0.00001 = 0.072 a month; the schedule itself
    # has no price row in the test book, so it is reported rather than zeroed
    assert cost.fixed_usd_month == Decimal("0.072144")
    assert cost.usd_per_million_events == 0
    assert [e.resource for e in cost.unpriced] == ["close schedule"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"usage": {"events_per_second": "fast"}}, "usage.retention_hours: expected an object"),
        ({"budget_usd_month": True}, "budget_usd_month: expected a number"),
        ({"resources": [{"name": "x"}]}, "resources: expected a list of objects each with a 'kind'"),
        ({"region": ""}, "cost_inputs.region: expected a non-empty string"),
    ],
)
def test_malformed_cost_inputs_name_the_field(change: dict[str, object], message: str) -> None:
    # GIVEN cost inputs with one bad field WHEN they are read THEN the error names it
    with pytest.raises(CostInputsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_cost_inputs(stack(SMALL_STACK, **change), "out.json")
