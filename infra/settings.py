"""A function's settings as infra renders them: the function's own schema (``meterline.settings``),
built once the stack's outputs it names are known, as the variables the function reads."""

from __future__ import annotations

from typing import Any

import pulumi

from meterline.settings import CellSettings


def rendered(
    schema: type[CellSettings], *, platform: bool = False, **inputs: pulumi.Input[Any]
) -> pulumi.Output[dict[str, str]]:
    """The variables that give a function ``schema(**inputs)`` (``platform``: with those its
    runtime sets itself, for clients outside it). A setting the schema requires and ``inputs``
    lack fails the deployment here, not the function at its first call."""
    return pulumi.Output.all(**inputs).apply(lambda values: schema(**values).to_env(platform=platform))
