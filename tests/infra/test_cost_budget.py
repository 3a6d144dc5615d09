"""The budget guardrail, called the way the policy engine calls it: `validate(args, report_violation)`."""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
)

from infra.policies.budget import BUDGET_RULES, STACK_TYPE
from tests.infra.cost_fixtures import AWS_STACK, SMALL_STACK, stack

WITHIN, FULLY_PRICED = BUDGET_RULES


def _args(outputs: dict[str, Any], config: dict[str, Any] | None = None) -> StackValidationArgs:
    options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    root = PolicyResource(
        STACK_TYPE,
        outputs,
        "urn:pulumi:s::meterline::pulumi:pulumi:Stack::meterline-s",
        "meterline-s",
        options,
        None,
        None,
        [],
        {},
    )
    return StackValidationArgs([root], config)


def _violations(rule: Any, args: StackValidationArgs) -> list[str]:
    found: list[str] = []
    rule.validate(args, lambda message, urn=None: found.append(message))
    return found


def test_rules_are_a_mandatory_budget_and_an_advisory_completeness_check() -> None:
    assert (WITHIN.name, WITHIN.enforcement_level) == (
        "billing-cell-within-budget",
        EnforcementLevel.MANDATORY,
    )
    assert FULLY_PRICED.enforcement_level == EnforcementLevel.ADVISORY


def test_stack_under_budget_passes() -> None:
    # GIVEN the AWS cell at 2 events/s with a 5000 USD budget (its fixed cost is under 1000 USD a month)
    outputs = {
        "cost_inputs": stack(
            AWS_STACK, budget_usd_month="5000", usage={**AWS_STACK["usage"], "events_per_second": "2"}
        )
    }
    # WHEN validated THEN no violation
    assert _violations(WITHIN, _args(outputs)) == []
    assert _violations(FULLY_PRICED, _args(outputs)) == []


def test_stack_over_budget_fails_with_the_estimate_in_the_message() -> None:
    # GIVEN the small stack, whose fixed cost alone (over 500 USD at list prices) beats 100 USD
    outputs = {"cost_inputs": stack(SMALL_STACK, budget_usd_month="100")}

    # WHEN validated
    violations = _violations(WITHIN, _args(outputs))

    # THEN one violation names the stack, the estimate and the budget
    assert len(violations) == 1
    assert violations[0].startswith("aws-test-1: estimated $")
    assert "exceeds its budget of $100.00/month" in violations[0]


def test_policy_config_can_tighten_the_budget_and_raise_the_volume() -> None:
    # GIVEN a stack within its own budget
    outputs = {"cost_inputs": stack(AWS_STACK, budget_usd_month="100000")}
    assert _violations(WITHIN, _args(outputs)) == []
    # WHEN the policy config sets a lower budget, or prices it at a far larger volume THEN it fails
    assert len(_violations(WITHIN, _args(outputs, {"budget_usd_month": "500"}))) == 1
    assert len(_violations(WITHIN, _args(outputs, {"events_per_second": "100000"}))) == 1


def test_missing_or_bad_cost_inputs_is_a_violation_not_a_pass() -> None:
    assert _violations(WITHIN, _args({"vpcId": "vpc-1"})) == [
        "the stack exports no cost_inputs output, so its cost cannot be checked"
    ]
    [message] = _violations(WITHIN, _args({"cost_inputs": {"stack": "s"}}))
    assert message.startswith("cost_inputs cannot be priced: stack output: cost_inputs")


def test_unpriced_items_are_an_advisory_violation_and_mark_the_budget_figure_a_lower_bound() -> None:
    # GIVEN an over-budget stack in a region without prices for one kind
    resources = [*SMALL_STACK["resources"], {"kind": "opensearch_domain", "name": "search"}]
    outputs = {"cost_inputs": stack(SMALL_STACK, budget_usd_month="100", resources=resources)}

    # WHEN both rules validate it
    [advice] = _violations(FULLY_PRICED, _args(outputs))
    [failure] = _violations(WITHIN, _args(outputs))

    # THEN the advisory names the unpriced kind, and the budget failure says its figure is a lower bound
    assert "1 items unpriced" in advice and "opensearch_domain" in advice
    assert "(a lower bound: 1 items unpriced)" in failure
