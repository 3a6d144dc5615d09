"""What a fresh GCP project needs before a cell can be built in it: every API the cell's resources
use, enabled (`gcp.projects.Service`), and the Google service agents that use the cell's key,
created (`gcp.projects.ServiceIdentity`; Cloud Storage's by asking for it) so that the key can be
granted to them before anything encrypted with it exists.

Enabling an API takes Service Usage itself (and Cloud Resource Manager for the project lookup): those
two are enabled once per project by hand (README, Deploy). APIs stay enabled on destroy: other
stacks in the project, and the retained ledger, still use them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

FUNCTION_APIS = (
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "eventarc.googleapis.com",
)
APIS_OF_MODULE: Mapping[str, tuple[str, ...]] = {
    "compute": ("compute.googleapis.com",),
    "kms": ("cloudkms.googleapis.com",),
    "managedkafka": ("managedkafka.googleapis.com",),
    "pubsub": ("pubsub.googleapis.com",),
    "firestore": ("firestore.googleapis.com",),
    "storage": ("storage.googleapis.com",),
    "serviceaccount": ("iam.googleapis.com",),
    "projects": ("cloudresourcemanager.googleapis.com", "iam.googleapis.com"),
    "cloudfunctionsv2": FUNCTION_APIS,
    "cloudrunv2": ("run.googleapis.com",),
    "cloudscheduler": ("cloudscheduler.googleapis.com",),
    "monitoring": ("monitoring.googleapis.com",),
}
"""The APIs a resource of each pulumi-gcp module calls (`gcp:<module>/...`): a Cloud Run function
is built by Cloud Build into Artifact Registry, runs on Cloud Run and is triggered through Eventarc."""
SERVICE_IDENTITY = "gcp:projects/serviceIdentity:ServiceIdentity"
"""Calls Service Usage (enabled by hand) for the API it names, and waits for that API instead."""
AGENT_APIS = {
    "firestore": "firestore.googleapis.com",
    "pubsub": "pubsub.googleapis.com",
    "managedkafka": "managedkafka.googleapis.com",
    "monitoring": "monitoring.googleapis.com",
}
"""The service agents created with ServiceIdentity: the ledger's, the topics', the brokers' (and
Kafka Connect's) CMEK users, and Cloud Monitoring's, which publishes alerts to a topic."""
STORAGE_AGENT = "storage"
"""Cloud Storage's agent has no ServiceIdentity: asking for it (getProjectServiceAccount) creates it."""


def apis_of(token: str) -> tuple[str, ...]:
    """The APIs a resource of type `token` needs enabled first (KeyError: a module not mapped yet)."""
    if token == SERVICE_IDENTITY:
        return ()
    return APIS_OF_MODULE[token.split(":")[1].split("/")[0]]


def api_label(api: str) -> str:
    """`cloudkms.googleapis.com` → `cloudkms`: the Service resource's logical name."""
    return api.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class Agent:
    email: pulumi.Output[str]
    created_by: pulumi.Resource
    """What must exist before the agent can be granted anything."""


@dataclass(frozen=True, slots=True)
class ProjectArgs:
    project: str


class Project(pulumi.ComponentResource):
    services: dict[str, gcp.projects.Service]
    agents: dict[str, Agent]
    number: pulumi.Output[str]

    def __init__(self, name: str, args: ProjectArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("meterline:gcp:Project", name, None, opts)
        self.project_id = args.project
        apis = sorted({api for group in APIS_OF_MODULE.values() for api in group})
        self.services = {
            api: gcp.projects.Service(
                api_label(api),
                project=args.project,
                service=api,
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for api in apis
        }
        self.number = gcp.organizations.get_project_output(
            project_id=args.project, opts=pulumi.InvokeOutputOptions(parent=self)
        ).number
        self.agents = {}
        for agent, api in AGENT_APIS.items():
            identity = gcp.projects.ServiceIdentity(
                f"{agent}-agent",
                project=args.project,
                service=api,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.services[api]]),
            )
            self.agents[agent] = Agent(identity.email, identity)
        storage = self.services["storage.googleapis.com"]
        account = gcp.storage.get_project_service_account_output(
            project=args.project, opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[storage])
        )
        self.agents[STORAGE_AGENT] = Agent(account.email_address, storage)
        self.register_outputs({"number": self.number})

    def ready_for(self, *modules: str) -> list[pulumi.Resource]:
        """The API enablements a resource of these pulumi-gcp modules waits for."""
        return [self.services[api] for module in modules for api in APIS_OF_MODULE[module]]

    def children(self, parent: pulumi.Resource, *modules: str) -> pulumi.ResourceOptions:
        """Options for a component's children: parented, after the APIs of `modules`."""
        return pulumi.ResourceOptions(parent=parent, depends_on=self.ready_for(*modules))


def after(options: pulumi.ResourceOptions, depends_on: Sequence[pulumi.Resource]) -> pulumi.ResourceOptions:
    """`options` waiting for `depends_on` as well."""
    return pulumi.ResourceOptions.merge(options, pulumi.ResourceOptions(depends_on=list(depends_on)))
