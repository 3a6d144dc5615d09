"""GCP cost rules: hand-computed lines, and every GCP stack fully priced from the committed book."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from infra.cost import estimate, load_figures, load_price_book, parse_cost_inputs
from tests.infra.cost_fixtures import figures, inputs, price_book

REGION = "us-central1"
PRICES = price_book(
    "gcp",
    REGION,
    [
        ("managed_kafka", "vcpu_hour", "1", "0.09"),
        ("managed_kafka", "memory_gib_hour", "1", "0.005"),
        ("cloud_run", "requests", "1000000", "0.40"),
        ("cloud_run", "vcpu_second", "1", "0.00002"),
        ("cloud_run", "gib_second", "1", "0.000002"),
        ("logging", "ingestion", "1", "0.50"),
        ("firestore", "reads", "100000", "0.03"),
        ("scheduler", "job_month", "1", "0.10"),
    ],
)


def test_a_kafka_cluster_and_a_pubsub_pushed_function_cost_what_the_paper_says() -> None:
    # GIVEN a 3 vCPU / 3 GiB cluster and the meter pushed one Pub/Sub message per usage event
    stack = inputs(
        "gcp",
        REGION,
        [
            {"kind": "managed_kafka_cluster", "name": "k", "vcpus": 3, "memory_gib": 3},
            {
                "kind": "cloud_run_function",
                "job": "meter",
                "memory_mb": 1024,
                "cpu": 1,
                "trigger": "pubsub",
                "source": "usage.events",
            },
        ],
    )
    work = figures(
        lambda__meter__gb_seconds=("1000", "million_events"), logs__any__ingested_bytes=("0", "event")
    )

    # WHEN it is estimated
    cost = estimate(parse_cost_inputs(stack, "test"), PRICES, work)

    # THEN fixed: 3 × 730 × 0.09 + 3 × 730 × 0.005 = 197.10 + 10.95
    assert cost.fixed_usd_month == Decimal("208.05")
    # AND per million events: 1e6 requests × 0.40/1e6 = 0.40; instance time 1000 GB-s / 1 GiB + 1e6 × 0.02 s
    #   = 21 000 s → vCPU 21 000 × 0.00002 = 0.42, GiB 21 000 × 0.000002 = 0.042
    assert cost.usd_per_million_events == Decimal("0.862")
    assert cost.complete


def test_a_firestore_triggered_function_gets_one_request_per_document_created() -> None:
    stack = inputs(
        "gcp",
        REGION,
        [
            {
                "kind": "cloud_run_function",
                "job": "rate",
                "memory_mb": 1024,
                "trigger": "firestore",
                "source": "aggregates",
            }
        ],
    )
    work = figures(
        dynamodb__aggregates__write_units=("0.1", "event"),
        lambda__rate__gb_seconds=("0", "million_events"),
        logs__any__ingested_bytes=("0", "event"),
    )
    cost = estimate(parse_cost_inputs(stack, "test"), PRICES, work)
    [requests] = [line for line in cost.lines if line.item == "rate requests"]
    assert requests.units_per_million == Decimal("100000.0")


def test_a_scheduled_drain_costs_its_schedule_not_a_request_per_event() -> None:
    # GIVEN aggregate called every minute (43,200 runs a month), joining each usage record
    stack = inputs(
        "gcp",
        REGION,
        [
            {
                "kind": "cloud_run_function",
                "job": "aggregate",
                "memory_mb": 1024,
                "cpu": 1,
                "trigger": "scheduler",
                "source": "usage.events",
                "joins": "usage",
            },
            {"kind": "cloud_scheduler_job", "name": "aggregate", "invocations_per_month": 43200},
        ],
    )
    work = figures(
        lambda__aggregate__gb_seconds=("0", "million_events"), logs__any__ingested_bytes=("0", "event")
    )
    # WHEN it is estimated
    cost = estimate(parse_cost_inputs(stack, "test"), PRICES, work)
    # THEN the requests are the schedule's: none per event
    [requests] = [line for line in cost.lines if line.item == "aggregate requests"]
    assert (requests.fixed_units, requests.units_per_million) == (Decimal(43200), 0)
    # AND fixed: 43 200 × 0.40/1e6 = 0.01728; 43 200 runs × 1 s → vCPU 0.864, GiB 0.0864; schedule 0.10
    assert cost.fixed_usd_month == Decimal("1.06768")
    # AND per million events: one usage read per record, 1e6 × 0.03/1e5 = 0.30
    assert cost.usd_per_million_events == Decimal("0.30")
    assert cost.complete


def test_an_unknown_trigger_is_reported_unpriced_not_zero() -> None:
    stack = inputs(
        "gcp",
        REGION,
        [{"kind": "cloud_run_function", "job": "x", "memory_mb": 256, "trigger": "carrier-pigeon"}],
    )
    cost = estimate(parse_cost_inputs(stack, "test"), PRICES, figures())
    assert [entry.reason for entry in cost.unpriced] == ["no request model for trigger 'carrier-pigeon'"]


def test_every_gcp_stack_is_fully_priced_by_the_committed_book(previews: dict[str, Any]) -> None:
    book, measured = load_price_book(), load_figures()
    stacks = {stack: build for stack, build in previews.items() if stack.startswith("gcp-")}
    assert stacks, "no GCP stack in stacks/"
    for stack, build in stacks.items():
        cost = estimate(parse_cost_inputs(build["outputs"]["cost_inputs"], stack), book, measured)
        assert cost.unpriced == (), stack
        assert cost.fixed_usd_month > 0 and cost.usd_per_million_events > 0
        assert {"managed_kafka", "firestore", "cloud_run", "pubsub"} <= {line.service for line in cost.lines}
        # aggregate is paid per scheduled run, not per usage document
        [requests] = [line for line in cost.lines if line.item == "aggregate requests"]
        assert requests.units_per_million == 0 and requests.fixed_units == 43200
