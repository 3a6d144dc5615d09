"""The cell's Cloud KMS key ring and key (90-day rotation), and the Google service agents that may
use it: Firestore (the ledger), Pub/Sub (bridge and alert topics), Managed Kafka (broker storage)
and Cloud Storage (function sources). Each agent gets encrypt/decrypt on this one key only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

ROTATION_PERIOD = f"{90 * 24 * 3600}s"
ENCRYPTER_DECRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
SERVICE_AGENTS = {
    "firestore": "service-{number}@gcp-sa-firestore.iam.gserviceaccount.com",
    "pubsub": "service-{number}@gcp-sa-pubsub.iam.gserviceaccount.com",
    "managedkafka": "service-{number}@gcp-sa-managedkafka.iam.gserviceaccount.com",
    "storage": "service-{number}@gs-project-accounts.iam.gserviceaccount.com",
}


@dataclass(frozen=True, slots=True)
class KeysArgs:
    cell: str
    region: str
    project: str
    labels: Mapping[str, str]


class Keys(pulumi.ComponentResource):
    key_id: pulumi.Output[str]
    project_number: pulumi.Output[str]
    grants: list[pulumi.Resource]
    """The agents' key grants: resources encrypted with the key depend on them."""

    def __init__(self, name: str, args: KeysArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:gcp:Keys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        project = gcp.organizations.get_project_output(
            project_id=args.project, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        self.project_number = project.number
        ring = gcp.kms.KeyRing("cell", name=f"{args.cell}-keys", location=args.region, opts=child)
        key = gcp.kms.CryptoKey(
            "cell",
            name=f"{args.cell}-ledger",
            key_ring=ring.id,
            purpose="ENCRYPT_DECRYPT",
            rotation_period=ROTATION_PERIOD,
            destroy_scheduled_duration=f"{30 * 24 * 3600}s",
            labels=dict(args.labels),
            opts=child,
        )
        self.key_id = key.id
        self.grants = [
            gcp.kms.CryptoKeyIAMMember(
                f"key-{service}",
                crypto_key_id=key.id,
                role=ENCRYPTER_DECRYPTER,
                member=self.project_number.apply(
                    lambda number, a=agent: f"serviceAccount:{a.format(number=number)}"
                ),
                opts=child,
            )
            for service, agent in SERVICE_AGENTS.items()
        ]
        self.cost_items = [{"kind": "kms_key", "name": f"{args.cell}-ledger", "count": 1}]
        self.register_outputs({"key_id": self.key_id})

    def agent(self, service: str) -> pulumi.Output[str]:
        template = SERVICE_AGENTS[service]
        return self.project_number.apply(lambda number: template.format(number=number))
