"""Budget guardrail: a billing cell whose estimated monthly cost exceeds its budget does not deploy.

The estimate prices the stack's `cost_inputs` output with infra/cost (committed prices and figures).
The rules are plain `StackValidationPolicy` objects so that tests call `validate` directly; the policy
pack that serves them is built elsewhere (constructing a `PolicyPack` starts a server).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.cost.inputs import CostError, decimal_of, parse_cost_inputs
from infra.cost.measured import load_figures
from infra.cost.model import StackCost, estimate
from infra.cost.prices import load_price_book
from infra.cost.report import money

STACK_TYPE = "pulumi:pulumi:Stack"

CONFIG = PolicyConfigSchema(
    properties={
        "budget_usd_month": {
            "type": "string",
            "description": "overrides the stack's meterline:budgetUsdMonth",
        },
        "events_per_second": {"type": "string", "description": "prices the stack at this volume instead"},
    }
)


def stack_cost(args: StackValidationArgs, report_violation: ReportViolation) -> StackCost | None:
    """The priced `cost_inputs` of the stack under validation; reports why when there is none."""
    outputs = _stack_outputs(args)
    if outputs is None or "cost_inputs" not in outputs:
        report_violation("the stack exports no cost_inputs output, so its cost cannot be checked", None)
        return None
    try:
        inputs = parse_cost_inputs(outputs["cost_inputs"], "stack output")
        volume = args.get_config().get("events_per_second")
        return estimate(
            inputs,
            load_price_book(),
            load_figures(),
            None if volume is None else decimal_of(volume, "policy config events_per_second"),
        )
    except CostError as error:
        report_violation(f"cost_inputs cannot be priced: {error}", None)
        return None


def validate_within_budget(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    cost = stack_cost(args, report_violation)
    if cost is None:
        return
    configured = args.get_config().get("budget_usd_month")
    try:
        budget = (
            cost.inputs.budget_usd_month if configured is None else decimal_of(configured, "budget_usd_month")
        )
    except CostError as error:
        report_violation(f"policy config: {error}", None)
        return
    if budget is None:
        report_violation(f"{cost.inputs.stack}: no budget configured (meterline:budgetUsdMonth)", None)
        return
    total = cost.total_usd_month()
    if total > budget:
        incomplete = "" if cost.complete else f" (a lower bound: {len(cost.unpriced)} items unpriced)"
        report_violation(
            f"{cost.inputs.stack}: estimated ${money(total)}/month{incomplete} exceeds its budget of "
            f"${money(budget)}/month (fixed ${money(cost.fixed_usd_month)} + "
            f"${money(cost.usd_per_million_events, 4)} per million events"
            f" at {cost.events_per_second} events/s); "
            "see `meterline cost`",
            None,
        )


def validate_fully_priced(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    cost = stack_cost(args, report_violation)
    if cost is None or cost.complete:
        return
    reasons = "; ".join(f"{entry.resource}: {entry.reason}" for entry in cost.unpriced[:3])
    more = f" and {len(cost.unpriced) - 3} more" if len(cost.unpriced) > 3 else ""
    report_violation(
        f"{cost.inputs.stack}: {len(cost.unpriced)} items unpriced, "
        f"the estimate is a lower bound ({reasons}{more})",
        None,
    )


def _stack_outputs(args: StackValidationArgs) -> Mapping[str, Any] | None:
    for resource in args.resources:
        if resource.resource_type == STACK_TYPE:
            return resource.props
    return None


BUDGET_RULES = [
    StackValidationPolicy(
        name="billing-cell-within-budget",
        description="The estimated monthly cost of a billing cell stays within its configured budget.",
        validate=validate_within_budget,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=CONFIG,
    ),
    StackValidationPolicy(
        name="billing-cell-fully-priced",
        description="Every resource of a billing cell has a price, so the budget check is not a lower bound.",
        validate=validate_fully_priced,
        enforcement_level=EnforcementLevel.ADVISORY,
        config_schema=CONFIG,
    ),
]
