"""The `cost_inputs` stack output, read and checked once.

Every stack exports `cost_inputs`: what it deploys (resources by kind) and the usage it is sized
for (stack config). Numbers arrive as JSON numbers or decimal strings and are read as `Decimal`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any


class CostError(Exception):
    """Bad input to the cost review: reported on one line."""


class CostInputsError(CostError):
    pass


@dataclass(frozen=True, slots=True)
class Usage:
    events_per_second: Decimal
    avg_event_bytes: Decimal
    tenants: Decimal
    retention_hours: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class CostInputs:
    stack: str
    cloud: str
    region: str
    budget_usd_month: Decimal | None
    usage: Usage
    resources: tuple[Mapping[str, Any], ...]
    origin: str
    """Where these inputs were read from, for error messages and the report."""


def decimal_of(value: object, where: str) -> Decimal:
    """A JSON number or decimal string as an exact, finite, non-negative Decimal."""
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise CostInputsError(f"{where}: expected a number or decimal string, got {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise CostInputsError(f"{where}: {value!r} is not a decimal number") from None
    if not number.is_finite() or number < 0:
        raise CostInputsError(f"{where}: {value!r} must be a finite number, not negative")
    return number


def parse_cost_inputs(raw: object, origin: str) -> CostInputs:
    if not isinstance(raw, Mapping):
        raise CostInputsError(f"{origin}: cost_inputs must be a JSON object")
    at = f"{origin}: cost_inputs"
    usage = _mapping(raw, "usage", at)
    retention = _mapping(usage, "retention_hours", f"{at}.usage")
    resources = raw.get("resources")
    if not isinstance(resources, list) or not all(isinstance(r, Mapping) and "kind" in r for r in resources):
        raise CostInputsError(f"{at}.resources: expected a list of objects each with a 'kind'")
    budget = raw.get("budget_usd_month")
    return CostInputs(
        stack=_text(raw, "stack", at),
        cloud=_text(raw, "cloud", at),
        region=_text(raw, "region", at),
        budget_usd_month=None if budget is None else decimal_of(budget, f"{at}.budget_usd_month"),
        usage=Usage(
            events_per_second=decimal_of(usage.get("events_per_second"), f"{at}.usage.events_per_second"),
            avg_event_bytes=decimal_of(usage.get("avg_event_bytes"), f"{at}.usage.avg_event_bytes"),
            tenants=decimal_of(usage.get("tenants"), f"{at}.usage.tenants"),
            retention_hours={
                str(topic): decimal_of(hours, f"{at}.usage.retention_hours.{topic}")
                for topic, hours in retention.items()
            },
        ),
        resources=tuple(resources),
        origin=origin,
    )


def cost_inputs_of_outputs(outputs: object, origin: str) -> CostInputs:
    """`cost_inputs` from a stack's outputs (`pulumi stack output --json`, or a preview's outputs).

    A program that exported it through `Output.json_dumps` hands it over as a JSON string.
    """
    if not isinstance(outputs, Mapping):
        raise CostInputsError(f"{origin}: stack outputs must be a JSON object")
    if "cost_inputs" not in outputs:
        raise CostInputsError(f"{origin}: no 'cost_inputs' output (is this `pulumi stack output --json`?)")
    raw = outputs["cost_inputs"]
    if isinstance(raw, str):
        raw = _loads(raw, f"{origin}: cost_inputs")
    return parse_cost_inputs(raw, origin)


def read_stack_output(path: Path) -> CostInputs:
    if path.is_dir():
        raise CostInputsError(f"{path}: is a directory, not a stack output JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CostInputsError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CostInputsError(f"{path}: cannot read ({error})") from None
    return cost_inputs_of_outputs(_loads(text, str(path)), str(path))


def _loads(text: str, where: str) -> object:
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as error:
        raise CostInputsError(f"{where}: not JSON ({error.msg} at line {error.lineno})") from None


def _mapping(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if not isinstance(value, Mapping):
        raise CostInputsError(f"{where}.{key}: expected an object")
    return value


def _text(parent: Mapping[str, Any], key: str, where: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value:
        raise CostInputsError(f"{where}.{key}: expected a non-empty string")
    return value
