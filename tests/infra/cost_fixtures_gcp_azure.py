"""Round test prices and figures for hand-computed GCP and Azure cost cases."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from infra.cost.measured import Figure, Figures
from infra.cost.prices import Price, PriceBook


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
