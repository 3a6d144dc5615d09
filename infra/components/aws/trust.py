"""Identity trust per cell, no long-lived secrets: one IAM role per cell that may only write (and
read back, to compare a repeat) its own statements, `statements/<cell>/*`, with the statements
key, and that only the cell's publish identity may assume:

- an AWS cell: its publish function's role (`sts:AssumeRole`);
- a GCP cell: Google-signed ID tokens of its publisher service account (`accounts.google.com` is
  a provider IAM knows): `aud` (the token's `azp`) and `sub` are the account's unique id, `oaud`
  the audience it asks its token for;
- an Azure cell: tokens of its publisher managed identity, from an IAM OIDC provider for the
  Entra ID tenant's issuer (one per tenant): `sub` is the identity's principal (object) id, `aud`
  the resource it asks its token for.

A cell's identity is read from its stack's `publisher` output (`pulumi.StackReference`), or given
in the home's config (`meterline:cells[].identity`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.aws.statements import object_arn
from infra.components.home_link import STATEMENTS_AUDIENCE
from infra.config import CellPublisher
from meterline.topology import STATEMENTS_PREFIX

SESSION_SECONDS = 3600
GOOGLE = "accounts.google.com"
STATEMENT_WRITES = ("s3:PutObject", "s3:GetObject")
STATEMENT_KEY_USE = ("kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt")
"""Decrypt is for reading a statement back (a repeat that met 412 compares its bytes)."""


def entra_issuer(tenant: str) -> str:
    """The issuer (`iss`) of a managed identity's v1 access tokens."""
    return f"https://sts.windows.net/{tenant}/"


@dataclass(frozen=True)
class CellIdentity:
    """A cell's publish identity: the config's values, or its stack's `publisher` output."""

    cell: CellPublisher
    aws_role_arn: pulumi.Input[str] | None = None
    gcp_unique_id: pulumi.Input[str] | None = None
    azure_principal_id: pulumi.Input[str] | None = None


def cell_identity(cell: CellPublisher, parent: pulumi.Resource | None = None) -> CellIdentity:
    if cell.stack is None:
        return CellIdentity(cell, cell.aws_role_arn, cell.gcp_unique_id, cell.azure_principal_id)
    reference = pulumi.StackReference(
        f"cell-{cell.name}", stack_name=cell.stack, opts=pulumi.ResourceOptions(parent=parent)
    )
    publisher = reference.require_output("publisher")

    def field(name: str) -> pulumi.Output[str]:
        def read(value: Any) -> str:
            if not isinstance(value, dict) or not value.get(name):
                raise pulumi.RunError(
                    f"meterline:cells {cell.name}: stack {cell.stack} exports no publisher.{name} "
                    "(deploy the cell first: README, Deploy)"
                )
            return str(value[name])

        return publisher.apply(read)

    match cell.cloud:
        case "aws":
            return CellIdentity(cell, aws_role_arn=field("role_arn"))
        case "gcp":
            return CellIdentity(cell, gcp_unique_id=field("service_account_unique_id"))
        case _:
            return CellIdentity(cell, azure_principal_id=field("principal_id"))


@dataclass(frozen=True, slots=True)
class CellTrustArgs:
    home: str
    region: str
    cells: Sequence[CellPublisher]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    role_names: Mapping[str, str]
    """cell → the name of its statements role."""
    tags: Mapping[str, str]


class CellTrust(pulumi.ComponentResource):
    roles: dict[str, pulumi.Output[str]]
    """cell → the ARN of the role it writes its statements as."""
    providers: dict[str, pulumi.Output[str]]
    """Entra ID tenant → the ARN of the IAM OIDC provider for its issuer."""

    def __init__(self, name: str, args: CellTrustArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:aws:CellTrust", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        self.providers = {}
        for tenant in sorted(
            {c.azure_tenant_id for c in args.cells if c.cloud == "azure" and c.azure_tenant_id}
        ):
            provider = aws.iam.OpenIdConnectProvider(
                f"entra-{tenant}",
                url=entra_issuer(tenant),
                client_id_lists=[STATEMENTS_AUDIENCE["azure"]],
                tags=tags,
                opts=child,
            )
            self.providers[tenant] = provider.arn
        self.roles = {}
        for cell in args.cells:
            identity = cell_identity(cell, self)
            role = aws.iam.Role(
                cell.name,
                name=args.role_names[cell.name],
                description=f"{cell.name} writes its statements to {args.home}",
                assume_role_policy=pulumi.Output.json_dumps(self._trust(identity)),
                max_session_duration=SESSION_SECONDS,
                tags={**tags, "statements-of": cell.name},
                opts=child,
            )
            aws.iam.RolePolicy(
                cell.name,
                role=role.id,
                policy=pulumi.Output.json_dumps(
                    statements_policy(cell.name, args.bucket_arn, args.key_arn, args.region)
                ),
                opts=child,
            )
            self.roles[cell.name] = role.arn
        self.register_outputs({"roles": self.roles})

    def _trust(self, identity: CellIdentity) -> dict[str, Any]:
        cell = identity.cell
        if cell.cloud == "aws":
            statement: dict[str, Any] = {
                "Effect": "Allow",
                "Principal": {"AWS": identity.aws_role_arn},
                "Action": "sts:AssumeRole",
            }
        elif cell.cloud == "gcp":
            statement = {
                "Effect": "Allow",
                "Principal": {"Federated": GOOGLE},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{GOOGLE}:aud": identity.gcp_unique_id,
                        f"{GOOGLE}:sub": identity.gcp_unique_id,
                        f"{GOOGLE}:oaud": STATEMENTS_AUDIENCE["gcp"],
                    }
                },
            }
        else:
            assert cell.azure_tenant_id is not None  # config.py requires it for an azure cell
            issuer = entra_issuer(cell.azure_tenant_id).removeprefix("https://")
            statement = {
                "Effect": "Allow",
                "Principal": {"Federated": self.providers[cell.azure_tenant_id]},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": identity.azure_principal_id,
                        f"{issuer}:aud": STATEMENTS_AUDIENCE["azure"],
                    }
                },
            }
        return {
            "Version": "2012-10-17",
            "Statement": [{"Sid": f"PublisherOf{_camel(cell.name)}", **statement}],
        }


def statements_policy(
    cell: str, bucket_arn: pulumi.Input[str], key_arn: pulumi.Input[str], region: str
) -> dict[str, Any]:
    """What a cell's role may do: write and read back its own statements, with the bucket's key
    through S3 only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OwnStatements",
                "Effect": "Allow",
                "Action": list(STATEMENT_WRITES),
                "Resource": [object_arn(bucket_arn, f"{STATEMENTS_PREFIX}{cell}/")],
            },
            {
                "Sid": "StatementsKey",
                "Effect": "Allow",
                "Action": list(STATEMENT_KEY_USE),
                "Resource": [key_arn],
                "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
            },
        ],
    }


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))
