"""The meterline policy pack. Building a PolicyPack starts the analyzer server and blocks, so it
happens only in `serve()`, which the pack's entry point (__main__.py) calls when Pulumi runs it
(`pulumi preview --policy-pack infra/policies`); tests call the rules' `validate` directly."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy, StackValidationPolicy

from infra.policies.aws import AWS_RULES
from infra.policies.azure import AZURE_RULES
from infra.policies.gcp import GCP_RULES


def rules() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    from infra.policies.budget import BUDGET_RULES

    return [*AWS_RULES, *GCP_RULES, *AZURE_RULES, *BUDGET_RULES]


def serve() -> PolicyPack:
    return PolicyPack(
        name="meterline", version="0.1.0", policies=rules(), enforcement_level=EnforcementLevel.MANDATORY
    )
