"""Azure cost rules: hand-computed lines, and every Azure stack fully priced from the committed book."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from infra.cost import estimate, load_figures, load_price_book, parse_cost_inputs
from tests.infra.cost_fixtures import figures, inputs, price_book

REGION = "eastus"
PRICES = price_book(
    "azure",
    REGION,
    [
        ("eventhubs", "standard_throughput_unit_hour", "1", "0.03"),
        ("eventhubs", "standard_ingress_events", "1000000", "0.028"),
        ("functions_flex", "executions", "1000000", "0.40"),
        ("functions_flex", "gb_second", "1", "0.000026"),
    ],
)


def test_event_hubs_and_a_flex_app_cost_what_the_paper_says() -> None:
    # GIVEN 2 throughput units, the usage hub, and the meter (1024 MB of work) on 2048 MB Flex instances
    stack = inputs(
        "azure",
        REGION,
        [
            {"kind": "eventhubs_namespace", "name": "ns", "sku": "Standard", "capacity": 2},
            {"kind": "eventhub", "topic": "usage.events", "partitions": 12},
            {
                "kind": "function_app_flex",
                "job": "meter",
                "memory_mb": 1024,
                "instance_memory_mb": 2048,
                "source": "usage.events",
            },
        ],
    )
    work = figures(
        lambda__meter__requests=("2000", "million_events"),
        # 2000 invocations × 1 s × 1024 MB
        lambda__meter__gb_seconds=("2000", "million_events"),
    )

    # WHEN it is estimated
    cost = estimate(parse_cost_inputs(stack, "test"), PRICES, work)

    # THEN fixed: 2 TU × 730 h × 0.03 = 43.80
    assert cost.fixed_usd_month == Decimal("43.80")
    # AND per million: ingress 1e6 × 0.028/1e6 = 0.028; executions 2000 × 0.40/1e6 = 0.0008;
    #   2000 s of work billed at the 2 GB instance = 4000 GB-s × 0.000026 = 0.104
    assert cost.usd_per_million_events == Decimal("0.1328")
    assert cost.complete


def test_a_tier_without_a_model_is_reported_unpriced() -> None:
    stack = inputs(
        "azure", REGION, [{"kind": "eventhubs_namespace", "name": "ns", "sku": "Basic", "capacity": 1}]
    )
    cost = estimate(parse_cost_inputs(stack, "test"), PRICES, figures())
    assert [entry.reason for entry in cost.unpriced] == ["sku 'Basic' is not modelled"]


def test_every_azure_stack_is_fully_priced_by_the_committed_book(previews: dict[str, Any]) -> None:
    book, measured = load_price_book(), load_figures()
    stacks = {stack: build for stack, build in previews.items() if stack.startswith("azure-")}
    assert stacks, "no Azure stack in stacks/"
    for stack, build in stacks.items():
        cost = estimate(parse_cost_inputs(build["outputs"]["cost_inputs"], stack), book, measured)
        assert cost.unpriced == (), stack
        assert {"eventhubs", "storage_tables", "functions_flex"} <= {line.service for line in cost.lines}
        assert not cost.over_budget, stack
