"""A GCP cell builds in a fresh project: every API its resources call is enabled before them, every
service agent that uses the cell's key exists before the key is granted to it, and the functions
build as the cell's own Cloud Build account."""

from __future__ import annotations

from typing import Any

import pytest

from infra.components.gcp.functions import BUILDER_ROLE
from infra.components.gcp.keys import KEY_USERS
from infra.components.gcp.project import AGENT_APIS, SERVICE_IDENTITY, STORAGE_AGENT, api_label, apis_of
from infra.config import stack_names
from infra.mocks import GCP_PROJECT_NUMBER
from tests.infra.builds import custom, key, named, of_type

GCP_STACKS = [stack for stack in stack_names() if stack.startswith("gcp-")]
SERVICE = "gcp:projects/service:Service"
GRANT = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"


@pytest.fixture(params=GCP_STACKS)
def build(request: pytest.FixtureRequest, previews: dict[str, Any]) -> dict[str, Any]:
    return previews[request.param]


def service_key(api: str) -> str:
    return f"{SERVICE}::{api_label(api)}"


def test_every_resource_waits_for_the_apis_of_its_module(build: dict[str, Any]) -> None:
    # GIVEN the enabled APIs of a GCP cell
    enabled = {r["inputs"]["service"] for r in of_type(build, SERVICE)}
    for service in of_type(build, SERVICE):
        # THEN enabling stays on destroy (other stacks and the retained ledger use the APIs)
        assert service["inputs"]["disableOnDestroy"] is False
    for resource in custom(build):
        if resource["type"] == SERVICE:
            continue
        # WHEN a resource's APIs are looked up  THEN they are known, enabled, and waited for
        try:
            apis = apis_of(resource["type"])
        except KeyError:
            pytest.fail(f"{key(resource)}: which APIs does its module call? (APIS_OF_MODULE)")
        for api in apis:
            assert api in enabled
            assert service_key(api) in resource["dependencies"], f"{key(resource)} before {api}"


def test_every_key_user_is_created_before_it_is_granted_the_key(build: dict[str, Any]) -> None:
    grants = {g["name"].removeprefix("key-"): g for g in of_type(build, GRANT)}
    assert sorted(grants) == sorted(KEY_USERS)
    identities = {r["inputs"]["service"]: r for r in of_type(build, SERVICE_IDENTITY)}
    for user in KEY_USERS:
        grant = grants[user]
        if user == STORAGE_AGENT:
            # Cloud Storage's agent is created by asking for it, once its API is on
            email = f"service-{GCP_PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com"
            assert grant["inputs"]["member"] == f"serviceAccount:{email}"
            assert service_key("storage.googleapis.com") in grant["dependencies"]
            continue
        # THEN the agent's identity is created after its API, and the grant after the identity
        identity = identities[AGENT_APIS[user]]
        assert service_key(AGENT_APIS[user]) in identity["dependencies"]
        assert key(identity) in grant["dependencies"]
        assert grant["inputs"]["member"].endswith(f"@gcp-sa-{user}.iam.gserviceaccount.com")
    # AND whatever is encrypted with the key waits for every grant
    encrypted = [
        *of_type(build, "gcp:firestore/database:Database"),
        *of_type(build, "gcp:storage/bucket:Bucket"),
        *of_type(build, "gcp:managedkafka/cluster:Cluster"),
        *of_type(build, "gcp:pubsub/topic:Topic"),
    ]
    for resource in encrypted:
        assert {key(g) for g in grants.values()} <= set(resource["dependencies"]), key(resource)


def test_monitoring_publishes_alerts_as_its_agent_once_created(build: dict[str, Any]) -> None:
    publisher = named(build, "gcp:pubsub/topicIAMMember:TopicIAMMember", "alerts-monitoring-publishes")
    assert publisher["inputs"]["member"].endswith("@gcp-sa-monitoring-notification.iam.gserviceaccount.com")
    assert "gcp:projects/serviceIdentity:ServiceIdentity::monitoring-agent" in publisher["dependencies"]


def test_functions_build_as_the_cells_builder_after_its_grants(build: dict[str, Any]) -> None:
    builder = named(build, "gcp:serviceaccount/account:Account", "builder")
    grants = [
        named(build, "gcp:projects/iAMMember:IAMMember", "builder-builds"),
        named(build, "gcp:storage/bucketIAMMember:BucketIAMMember", "builder-reads-sources"),
    ]
    assert grants[0]["inputs"]["role"] == BUILDER_ROLE
    assert grants[1]["inputs"]["role"] == "roles/storage.objectViewer"
    email = builder["inputs"]["accountId"]
    for grant in grants:
        assert grant["inputs"]["member"].startswith(f"serviceAccount:{email}@")
    for function in of_type(build, "gcp:cloudfunctionsv2/function:Function"):
        assert f"/serviceAccounts/{email}@" in function["inputs"]["buildConfig"]["serviceAccount"]
        assert {key(grant) for grant in grants} <= set(function["dependencies"])
