"""The statement exchange on S3: one object per key in the billing home's bucket.

``put`` is a conditional write (``If-None-Match: *``): S3 refuses it when the key exists (412), and
the adapter then reads what stands to tell a repeat of the same bytes (a no-op) from a conflict. A
409 (another conditional write to the key in flight) is retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from meterline.exchange import ExchangeConflictError, ExchangeError

S3Client = Any
"""boto3's S3 client (no type stubs for it are installed)."""
_IN_FLIGHT_ATTEMPTS = 5


class S3Exchange:
    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def put(self, key: str, body: bytes) -> bool:
        for attempt in range(_IN_FLIGHT_ATTEMPTS):
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
                return True
            except ClientError as error:
                code = _code(error)
                if code == "ConditionalRequestConflict" and attempt + 1 < _IN_FLIGHT_ATTEMPTS:
                    time.sleep(0.05 * 2**attempt)
                    continue
                if code != "PreconditionFailed":
                    raise _failed("put", key, error) from None
            except BotoCoreError as error:
                raise _failed("put", key, error) from None
            if self.get(key) != body:
                raise ExchangeConflictError(key)
            return False
        raise ExchangeError(f"s3://{self.bucket}/{key}: put: other writes to the key kept conflicting")

    def get(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            body: bytes = response["Body"].read()
            return body
        except ClientError as error:
            if _code(error) in ("NoSuchKey", "404"):
                return None
            raise _failed("get", key, error) from None
        except BotoCoreError as error:
            raise _failed("get", key, error) from None

    def keys(self, prefix: str, after: str = "") -> list[str]:
        found: list[str] = []
        arguments: dict[str, str] = {"Bucket": self.bucket, "Prefix": prefix}
        if after:
            arguments["StartAfter"] = after
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**arguments):
                found += [entry["Key"] for entry in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as error:
            raise _failed("list", prefix, error) from None
        return found


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _failed(action: str, key: str, error: Exception) -> ExchangeError:
    return ExchangeError(f"{key}: S3 {action} failed: {error}")


def home_exchange(
    cell: str, bucket: str, region: str, role_arn: str, web_identity: Callable[[], str] | None = None
) -> S3Exchange:
    """The home's bucket as the cell's statements role: assumed with the function's own AWS
    credentials, or with ``web_identity()`` (a GCP or Azure token) where there are none. The
    credentials are renewed before they expire, for as long as the function instance lives."""
    import boto3
    import botocore.session
    from botocore.credentials import RefreshableCredentials

    sts = boto3.client("sts", region_name=region)
    session_name = f"meterline-publish-{cell}"[:64]

    def assume() -> dict[str, str]:
        if web_identity is None:
            response = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)
        else:
            response = sts.assume_role_with_web_identity(
                RoleArn=role_arn, RoleSessionName=session_name, WebIdentityToken=web_identity()
            )
        credentials = response["Credentials"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }

    core = botocore.session.get_session()
    # botocore's refreshing credentials have no public setter on a session
    core._credentials = RefreshableCredentials.create_from_metadata(  # type: ignore[attr-defined]
        assume(), assume, "sts-assume-role"
    )
    client = boto3.Session(botocore_session=core, region_name=region).client("s3")
    return S3Exchange(client, bucket)
