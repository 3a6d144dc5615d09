"""A moto server in its own process, so that the stand-in for DynamoDB has a core of its own."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path
from typing import Any

from .process import ChildProcess, free_port


class MotoServer:
    def __init__(self, log: Path) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.child = ChildProcess("the moto server", command, log)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.child.start(lambda: reachable(self.endpoint))

    def stop(self) -> None:
        self.child.stop()


def reachable(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=0.5):
            return True
    except (OSError, ValueError):  # ValueError: not a URL urllib can open
        return False


MOTO_SERVICES = ("dynamodb", "dynamodbstreams")


def moto_client(service: str, endpoint: str, region: str) -> Any:
    """A boto3 client of ``service`` on the moto server (streams refuse account-scoped endpoints), with
    credentials of its own: moto takes any, and none need be in the environment."""
    import boto3
    from botocore.config import Config

    client: Any = boto3.client  # of any service, not one the stubs' overloads name
    return client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        config=Config(account_id_endpoint_mode="disabled"),
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
