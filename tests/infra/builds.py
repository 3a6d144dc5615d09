"""Finding resources in a stack build."""

from __future__ import annotations

import json
from typing import Any


def of_type(build: dict[str, Any], token: str) -> list[dict[str, Any]]:
    return [resource for resource in build["resources"] if resource["type"] == token]


def named(build: dict[str, Any], token: str, name: str) -> dict[str, Any]:
    [resource] = [r for r in of_type(build, token) if r["name"] == name]
    return resource


def policy_document(build: dict[str, Any], role_policy: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        named(build, "aws:iam/rolePolicy:RolePolicy", role_policy)["inputs"]["policy"]
    )
    return document


def statement(document: dict[str, Any], sid: str) -> dict[str, Any]:
    [found] = [s for s in document["Statement"] if s["Sid"] == sid]
    return found


def key(resource: dict[str, Any]) -> str:
    """How a build's `dependencies` and `parent` name a resource: `TYPE::NAME`."""
    return f"{resource['type']}::{resource['name']}"


def custom(build: dict[str, Any]) -> list[dict[str, Any]]:
    """The cloud resources of a build (not its components)."""
    return [r for r in build["resources"] if not r["type"].startswith("meterline:")]
