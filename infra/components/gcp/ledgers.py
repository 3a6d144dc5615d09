"""The cell's ledgers in one Firestore (native mode) database: one collection per
`meterline.topology.TABLES` entry, documents keyed by the table's `pk` and `sk`.

Regional (the cell's region), point-in-time recovery on (7 days), delete protection on, encrypted
with the cell's key (CMEK). TTL policies on the `expires_at` field exactly where the topology has
one. What the aggregates table's stream does on AWS, Firestore's document-created events do
here (Eventarc, to rate); nothing is triggered by usage documents: aggregate reads the topic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from meterline.topology import Table


@dataclass(frozen=True, slots=True)
class LedgersArgs:
    cell: str
    region: str
    project: str
    tables: Sequence[Table]
    key_id: pulumi.Input[str]
    key_grants: Sequence[pulumi.Resource]
    labels: Mapping[str, str]
    triggered: Sequence[str] = ()
    """Collections whose created documents trigger a function (Eventarc)."""


class Ledgers(pulumi.ComponentResource):
    database_name: pulumi.Output[str]
    database_path: pulumi.Output[str]
    """`projects/P/databases/D`: what IAM conditions scope access to."""
    tables: Sequence[Table]

    def __init__(self, name: str, args: LedgersArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:gcp:Ledgers", name, None, opts)
        database = gcp.firestore.Database(
            "ledger",
            name=f"{args.cell}-ledger",
            project=args.project,
            location_id=args.region,
            type="FIRESTORE_NATIVE",
            concurrency_mode="PESSIMISTIC",
            point_in_time_recovery_enablement="POINT_IN_TIME_RECOVERY_ENABLED",
            delete_protection_state="DELETE_PROTECTION_ENABLED",
            deletion_policy="ABANDON",
            cmek_config={"kms_key_name": args.key_id},
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.key_grants)),
        )
        for table in args.tables:
            if table.ttl_attribute:
                gcp.firestore.Field(
                    f"{table.name}-ttl",
                    project=args.project,
                    database=database.name,
                    collection=table.name,
                    field=table.ttl_attribute,
                    ttl_config={},
                    index_config={},  # no single-field indexes on the expiry timestamp
                    opts=pulumi.ResourceOptions(parent=self),
                )
        self.database_name = database.name
        self.database_path = pulumi.Output.concat("projects/", args.project, "/databases/", database.name)
        self.tables = tuple(args.tables)
        self.cost_items: list[dict[str, Any]] = [
            {
                "kind": "firestore_collection",
                "name": f"{args.cell}-ledger/{table.name}",
                "table": table.name,
                "pitr": True,
                "ttl": table.ttl_attribute is not None,
                "change_events": table.name in args.triggered,
            }
            for table in args.tables
        ]
        self.register_outputs({"database": self.database_name})
