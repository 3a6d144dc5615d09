"""What the policy rules of every cloud share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from infra import config

REQUIRED_TAGS = ("app", "cell", *config.REQUIRED_TAGS)
"""`app` and `cell` come from the program (`StackConfig.resource_tags`), the rest from the stack file."""


def mandatory(
    name: str, description: str, validate: Callable[[ResourceValidationArgs, ReportViolation], Any]
) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=name, description=description, validate=validate, enforcement_level=EnforcementLevel.MANDATORY
    )


def missing_tags(tags: dict[str, Any] | None) -> list[str]:
    """The required tags (or GCP labels) that are absent or empty."""
    present = tags or {}
    return [tag for tag in REQUIRED_TAGS if not present.get(tag)]
