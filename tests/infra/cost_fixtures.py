"""Hand-written cost inputs, price books with round prices and figures, shared by the cost tests."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from infra.cost.measured import Figure, Figures, load_figures
from infra.cost.prices import PRICE_COLUMNS, Price, PriceBook, load_price_book

# Round prices, us-east-1 only: the arithmetic in test_cost_model.py is done against these.
TEST_PRICES = [
    ("msk", "serverless_cluster_hour", "cluster-hour", "1", "0.75"),
    ("msk", "serverless_partition_hour", "partition-hour", "1", "0.0015"),
    ("msk", "serverless_data_in", "GB", "1", "0.10"),
    ("msk", "serverless_data_out", "GB", "1", "0.05"),
    ("msk", "serverless_storage", "GB-month", "1", "0.10"),
    ("lambda", "requests", "requests", "1000000", "0.20"),
    ("lambda", "gb_second_arm64", "GB-seconds", "1", "0.00001"),
    ("dynamodb", "on_demand_write_request_unit", "WRU", "1000000", "0.625"),
    ("dynamodb", "on_demand_read_request_unit", "RRU", "1000000", "0.125"),
    ("dynamodb", "storage", "GB-month", "1", "0.25"),
    ("dynamodb", "pitr_storage", "GB-month", "1", "0.20"),
    ("dynamodb", "stream_read_request_lambda", "stream reads", "1000000", "0"),
    ("cloudwatch", "alarm_month", "alarm-months", "1", "0.10"),
]

TEST_FIGURES: dict[str, dict[str, str]] = {
    "msk.record_overhead_bytes": {"value": "24", "per": "constant"},
    "msk.consumer_reads_per_record": {"value": "1", "per": "constant"},
    "lambda.meter.requests": {"value": "2000", "per": "million_events"},
    "lambda.meter.gb_seconds": {"value": "4000", "per": "million_events"},
    "dynamodb.usage.write_units": {"value": "1", "per": "event"},
    "dynamodb.usage.read_units": {"value": "0", "per": "event"},
    # 1e6 events × 1073.741824 bytes = 2^30 bytes: one GB per million events.
    "dynamodb.usage.stored_bytes": {"value": "1073.741824", "per": "event"},
}

SMALL_STACK: dict[str, Any] = {
    "stack": "aws-test-1",
    "cloud": "aws",
    "region": "us-east-1",
    "budget_usd_month": "1000",
    "usage": {
        "events_per_second": "10",
        "avg_event_bytes": 1000,
        "tenants": 10,
        "retention_hours": {"usage.events": 73},
    },
    "resources": [
        {"kind": "msk_serverless_cluster", "name": "cell", "count": 1},
        {"kind": "msk_partition", "topic": "usage.events", "count": 2},
        {
            "kind": "lambda_function",
            "name": "meter",
            "job": "meter",
            "memory_mb": 1769,
            "architecture": "arm64",
        },
        {
            "kind": "dynamodb_table",
            "name": "usage",
            "billing": "on_demand",
            "pitr": True,
            "stream": True,
            "retention_days": 365,
        },
        {"kind": "cloudwatch_alarm", "count": 5},
    ],
}

# The shape the AWS program exports (issue 6), with every table and function of the pipeline.
AWS_STACK: dict[str, Any] = {
    "stack": "aws-us-east-1",
    "cloud": "aws",
    "region": "us-east-1",
    "budget_usd_month": "1500",
    "usage": {
        "events_per_second": "200",
        "avg_event_bytes": 450,
        "tenants": 1000,
        "retention_hours": {
            "usage.events": 168,
            "usage.rejected": 720,
            "billing.alerts": 720,
            "billing.invoices": 8760,
        },
    },
    "resources": [
        {"kind": "msk_serverless_cluster", "name": "cell", "count": 1},
        *(
            {"kind": "msk_partition", "topic": topic, "count": count}
            for topic, count in (
                ("usage.events", 12),
                ("usage.rejected", 3),
                ("billing.alerts", 3),
                ("billing.invoices", 3),
            )
        ),
        *(
            {"kind": "dynamodb_table", "name": name, "billing": "on_demand", "pitr": True, "stream": stream}
            for name, stream in (
                ("usage", True),
                ("aggregates", True),
                ("charges", False),
                ("invoices", False),
            )
        ),
        *(
            {"kind": "lambda_function", "name": job, "job": job, "memory_mb": memory, "architecture": "arm64"}
            for job, memory in (("meter", 1769), ("aggregate", 1024), ("rate", 1024), ("close", 2048))
        ),
        {"kind": "scheduler_schedule", "name": "close", "invocations_per_month": 720},
        {"kind": "kms_key", "count": 1},
        {"kind": "cloudwatch_log_group", "name": "/aws/lambda/meter", "job": "meter", "retention_days": 30},
        {"kind": "cloudwatch_log_group", "name": "/aws/lambda/rate", "job": "rate", "retention_days": 30},
        {"kind": "cloudwatch_alarm", "count": 9},
        {"kind": "cloudwatch_dashboard", "count": 1},
        {"kind": "nat_gateway", "count": 0},
        {"kind": "vpc_endpoint", "type": "Gateway", "count": 1},
        {"kind": "sqs_queue", "name": "meter-dlq", "count": 1},
    ],
}


def stack(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of `base` with top-level keys replaced."""
    result = copy.deepcopy(base)
    result.update(changes)
    return result


def write_test_prices(directory: Path) -> PriceBook:
    path = directory / "prices.csv"
    rows = [",".join(PRICE_COLUMNS)] + [
        f"aws,{service},{sku},us-east-1,{unit},{per},{price},list,test price,2026-11-01"
        for service, sku, unit, per, price in TEST_PRICES
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return load_price_book(path)


def write_test_figures(directory: Path, figures: dict[str, dict[str, str]] = TEST_FIGURES) -> Figures:
    path = directory / "measured.json"
    entries = {name: {**entry, "unit": "", "source": "test figure"} for name, entry in figures.items()}
    path.write_text(json.dumps({"figures": entries}), encoding="utf-8")
    return load_figures(path)


def write_stack_output(directory: Path, cost_inputs: dict[str, Any], name: str = "out.json") -> Path:
    path = directory / name
    path.write_text(
        json.dumps({"cost_inputs": cost_inputs, "usageTableName": "usage-1234"}), encoding="utf-8"
    )
    return path


# --- GCP and Azure: price books and figures built in memory, for hand-computed cases ---------------


def price_book(cloud: str, region: str, rows: list[tuple[str, str, str, str]]) -> PriceBook:
    """rows: (service, sku, per, price_usd)."""
    return PriceBook(
        [
            Price(
                cloud,
                service,
                sku,
                region,
                "unit",
                Decimal(per),
                Decimal(price),
                "list",
                "test price",
                "2026-11-01",
            )
            for service, sku, per, price in rows
        ],
        "test prices",
    )


def figures(**values: tuple[str, str]) -> Figures:
    """name (dots as `__`) = (value, per)."""
    return Figures(
        {
            name.replace("__", "."): Figure(
                name.replace("__", "."), Decimal(value), per, "", "test figure", ""
            )
            for name, (value, per) in values.items()
        }
    )


def inputs(cloud: str, region: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "stack": f"{cloud}-{region}",
        "cloud": cloud,
        "region": region,
        "budget_usd_month": "100",
        "usage": {
            "events_per_second": "10",
            "avg_event_bytes": 450,
            "tenants": 10,
            "retention_hours": {"usage.events": 168},
        },
        "resources": resources,
    }
