"""The `cost_inputs` stack output: what the cost model (infra/cost/) prices, as plain JSON values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from infra.config import StackConfig
from meterline.topology import Topic


class CostedComponent(Protocol):
    cost_items: list[dict[str, Any]]


def cost_inputs(
    config: StackConfig, topics: Sequence[Topic], components: Sequence[CostedComponent]
) -> dict[str, Any]:
    return {
        "stack": config.stack,
        "cloud": config.cloud,
        "region": config.region,
        "budget_usd_month": str(config.budget_usd_month),
        "usage": {
            "events_per_second": str(config.load.events_per_second),
            "avg_event_bytes": config.load.avg_event_bytes,
            "tenants": config.load.tenants,
            "retention_hours": {topic.name: topic.retention_hours for topic in topics},
        },
        "resources": [item for component in components for item in component.cost_items],
    }
