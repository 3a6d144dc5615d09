"""The cell's Cloud KMS key ring and key (90-day rotation), and the Google service agents that may
use it: Firestore (the ledger), Pub/Sub (bridge and alert topics), Managed Kafka (broker storage)
and Cloud Storage (function sources). Each agent gets encrypt/decrypt on this one key only, once it
exists (`Project` creates the agents).

The ring, the key and the ledger's grant are kept (infra/components/keep.py): a key ring cannot be
deleted at all, and a retained ledger is unreadable without its key and the Firestore agent's grant.
The ring's name carries the stack's name suffix, so a new incarnation of the cell gets a new ring.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.components.gcp.project import STORAGE_AGENT, Project
from infra.components.keep import kept

ROTATION_PERIOD = f"{90 * 24 * 3600}s"
ENCRYPTER_DECRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
KEY_USERS = ("firestore", "pubsub", "managedkafka", STORAGE_AGENT)
"""The service agents that encrypt and decrypt with the cell's key."""
LEDGER_KEY_USER = "firestore"


@dataclass(frozen=True, slots=True)
class KeysArgs:
    cell: str
    region: str
    project: Project
    ring_name: str
    labels: Mapping[str, str]


class Keys(pulumi.ComponentResource):
    key_id: pulumi.Output[str]
    grants: list[pulumi.Resource]
    """The agents' key grants: resources encrypted with the key depend on them."""

    def __init__(self, name: str, args: KeysArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:gcp:Keys", name, None, opts)
        apis = args.project.ready_for("kms")
        ring = gcp.kms.KeyRing(
            "cell", name=args.ring_name, location=args.region, opts=kept(self, depends_on=apis)
        )
        key = gcp.kms.CryptoKey(
            "cell",
            name=f"{args.cell}-ledger",
            key_ring=ring.id,
            purpose="ENCRYPT_DECRYPT",
            rotation_period=ROTATION_PERIOD,
            destroy_scheduled_duration=f"{30 * 24 * 3600}s",
            labels=dict(args.labels),
            opts=kept(self, depends_on=apis),
        )
        self.key_id = key.id
        self.grants = []
        for service in KEY_USERS:
            agent = args.project.agents[service]
            after_agent = [*apis, agent.created_by]
            self.grants.append(
                gcp.kms.CryptoKeyIAMMember(
                    f"key-{service}",
                    crypto_key_id=key.id,
                    role=ENCRYPTER_DECRYPTER,
                    member=agent.email.apply(lambda email: f"serviceAccount:{email}"),
                    opts=kept(self, after_agent)
                    if service == LEDGER_KEY_USER
                    else pulumi.ResourceOptions(parent=self, depends_on=after_agent),
                )
            )
        self.cost_items = [{"kind": "kms_key", "name": f"{args.cell}-ledger", "count": 1}]
        self.register_outputs({"key_id": self.key_id})
