"""The cell's ledgers in one Firestore (native mode) database: one collection per
`meterline.topology.TABLES` entry, named as the functions name it (`COLLECTION_PREFIX` + table, the
functions' METERLINE_TABLE_PREFIX), documents keyed by the table's `pk` and `sk`.

Regional (the cell's region), point-in-time recovery on (7 days), delete protection on, encrypted
with the cell's key (CMEK), kept on destroy (infra/components/keep.py) and named with the stack's
name suffix. No TTL policy: nothing in the ledger expires (see `meterline.topology.Table`). The
composite index the store's range query needs (`firestore_layout.QUERY_INDEX`) on every collection
the jobs query. What the aggregates table's stream does on AWS, Firestore's document-created
events do here (Eventarc, to rate); nothing is triggered by usage documents: aggregate reads the topic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from infra.components.gcp.project import Project, after
from infra.components.keep import kept
from meterline.adapters.firestore_layout import QUERY_INDEX, collection_name
from meterline.topology import AGGREGATES_TABLE, INVOICES_TABLE, Table

COLLECTION_PREFIX = "ledger-"
"""The functions' METERLINE_TABLE_PREFIX: table `usage` is collection `ledger-usage`."""
QUERIED_TABLES = (AGGREGATES_TABLE.name, INVOICES_TABLE.name)
"""The tables the jobs query by key range (pipeline/ledger.py, aggregate.py, rate.py, close.py, and
invoices.py: a customer's invoices and amendments, catalog snapshots); the others are read by key
only. tests/infra/test_firestore_indexes.py runs the jobs to check it."""


@dataclass(frozen=True, slots=True)
class LedgersArgs:
    cell: str
    region: str
    project: Project
    database_name: str
    tables: Sequence[Table]
    key_id: pulumi.Input[str]
    key_grants: Sequence[pulumi.Resource]
    labels: Mapping[str, str]
    triggered: Sequence[str] = ()
    """Collections whose created documents trigger a function (Eventarc)."""


def collection(table: str) -> str:
    return collection_name(COLLECTION_PREFIX, table)


class Ledgers(pulumi.ComponentResource):
    database_name: pulumi.Output[str]
    database_path: pulumi.Output[str]
    """`projects/P/databases/D`: what IAM conditions scope access to."""
    tables: Sequence[Table]

    def __init__(self, name: str, args: LedgersArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:gcp:Ledgers", name, None, opts)
        project_id = args.project.project_id
        child = args.project.children(self, "firestore")
        database = gcp.firestore.Database(
            "ledger",
            name=args.database_name,
            project=project_id,
            location_id=args.region,
            type="FIRESTORE_NATIVE",
            concurrency_mode="PESSIMISTIC",
            point_in_time_recovery_enablement="POINT_IN_TIME_RECOVERY_ENABLED",
            delete_protection_state="DELETE_PROTECTION_ENABLED",
            deletion_policy="ABANDON",
            cmek_config={"kms_key_name": args.key_id},
            opts=kept(self, [*args.project.ready_for("firestore"), *args.key_grants]),
        )
        for table in QUERIED_TABLES:
            gcp.firestore.Index(
                f"{table}-range",
                project=project_id,
                database=database.name,
                collection=collection(table),
                query_scope="COLLECTION",
                api_scope="ANY_API",
                fields=[{"field_path": field, "order": order} for field, order in QUERY_INDEX],
                opts=after(child, [database]),
            )
        self.database_name = database.name
        self.database_path = pulumi.Output.concat("projects/", project_id, "/databases/", database.name)
        self.tables = tuple(args.tables)
        self.cost_items: list[dict[str, Any]] = [
            {
                "kind": "firestore_collection",
                "name": f"{args.database_name}/{collection(table.name)}",
                "table": table.name,
                "pitr": True,
                "change_events": table.name in args.triggered,
            }
            for table in args.tables
        ]
        self.register_outputs({"database": self.database_name})
