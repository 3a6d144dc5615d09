"""What a cell and its billing home agree on: the names the home gives each cell's statements role
and its bucket, the audience of the tokens a GCP or Azure cell trades for that role, and where a
cell finds its home (`meterline:home`: the home's stack by `pulumi.StackReference`, or given).

Deploying the pair takes two passes (README, Deploy): the cells first (their publish identity
exists, its schedule paused: there is no home yet), then the home (it trusts each cell's
identity), then the cells again (now they know their role and publish).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from infra.config import StackConfig
from meterline.adapters import azure_functions, gcp_functions
from meterline.topology import METER, PUBLISH

STATEMENTS_AUDIENCE = {"gcp": gcp_functions.STATEMENTS_AUDIENCE, "azure": azure_functions.STATEMENTS_AUDIENCE}
"""The audience a GCP cell asks its ID token for (the role checks it as `oaud`), and the resource
an Azure cell's managed identity asks its token for (the role's OIDC provider's client id)."""


def statements_bucket_name(home: StackConfig) -> str:
    """Global: carries the home's name suffix, like every name that outlives a destroy."""
    return f"{home.cell}-statements-{home.name_suffix}"


def statements_role_name(home: StackConfig, cell: str) -> str:
    """The role cell `cell` (`<cloud>-<region>`) writes its statements as."""
    return f"{home.cell}-{cell}-statements"


def publisher_role_name(cell: StackConfig) -> str:
    """An AWS cell's publish function role (its functions' roles are `<cell>-<job>-function`)."""
    return f"{cell.cell}-publish-function"


@dataclass(frozen=True)
class HomeEndpoint:
    """Where this cell writes its statements, and as whom."""

    bucket: pulumi.Output[str]
    region: pulumi.Output[str]
    role_arn: pulumi.Output[str]


def home_endpoint(config: StackConfig) -> HomeEndpoint | None:
    """The cell's home from its config; None when the home is not deployed yet."""
    link = config.home
    if link is None:
        return None
    if link.stack is None:
        assert link.bucket and link.region and link.role_arn  # config.py checked them
        return HomeEndpoint(
            pulumi.Output.from_input(link.bucket),
            pulumi.Output.from_input(link.region),
            pulumi.Output.from_input(link.role_arn),
        )
    home = pulumi.StackReference("home", stack_name=link.stack)
    statements = home.require_output("statements")

    def role_of(roles: Any) -> str:
        if not isinstance(roles, dict) or config.stack not in roles:
            raise pulumi.RunError(
                f"stack {config.stack}: meterline:home.stack {link.stack} has no statements role for "
                f"this cell: add {config.stack} to its meterline:cells and deploy it first"
            )
        return str(roles[config.stack])

    return HomeEndpoint(
        statements.apply(lambda s: str(s["bucket"])),
        statements.apply(lambda s: str(s["region"])),
        home.require_output("cell_roles").apply(role_of),
    )


def publish_settings(config: StackConfig, home: HomeEndpoint | None) -> dict[str, pulumi.Input[Any]]:
    """The publish function's settings fields beyond the cell's own: its cell name and its home.
    Without a home they are absent and its schedule is paused."""
    settings: dict[str, pulumi.Input[Any]] = {"cell_name": config.stack}
    if home is not None:
        settings |= {
            "statements_bucket": home.bucket,
            "statements_region": home.region,
            "statements_role_arn": home.role_arn,
        }
        if config.cloud in STATEMENTS_AUDIENCE:
            settings["statements_audience"] = STATEMENTS_AUDIENCE[config.cloud]
    return settings


def job_settings(config: StackConfig, home: HomeEndpoint | None) -> dict[str, dict[str, pulumi.Input[Any]]]:
    """Job → fields of its settings schema (``meterline.settings``) beyond the cell's own:
    publish's (above), and the cell's name for meter, whose measurements carry the cell's market
    (`$cloud`, `$region`: `Market.of_cell`, SPEC §8)."""
    return {PUBLISH.job: publish_settings(config, home), METER.job: {"cell_name": config.stack}}
