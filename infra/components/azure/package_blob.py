"""A function app's package as a block blob, uploaded with Microsoft Entra ID.

The host storage account refuses shared keys, and azure-native's `storage.Blob` writes with the
account key (pulumi-azure-native #2015, #2948; #3709 says why: the provider reads blobs' data plane
with keys), so the cell uploads through a dynamic provider: Put Blob on the Blob service REST API
with a bearer token from `DefaultAzureCredential` (the deployer's `az login`, or `AZURE_*` variables
for a service principal), which holds Storage Blob Data Contributor on the package's container.

A new role assignment can take minutes to reach the data plane: an upload refused for missing
rights is tried again for up to `ROLE_WAIT_SECONDS`. The blob keeps the package's SHA-256 as
metadata; a changed digest uploads again, a changed path to the same bytes does nothing.

Pulumi stores the provider in the stack's state by pickling it (dill), and the provider process
that unpickles it cannot import `infra` (it runs from the project's virtualenv, without the
checkout on its path: pulumi/pulumi#7453). So the provider class is made inside a function, which
dill pickles by value, and its methods use only the standard library and `azure.identity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi.dynamic

ROLE_WAIT_SECONDS = 600
"""Azure documents up to ten minutes for a role assignment to take effect."""
STORAGE_SCOPE = "https://storage.azure.com/.default"
BLOB_API_VERSION = "2023-11-03"


def _provider_class() -> type[pulumi.dynamic.ResourceProvider]:
    """The provider's class, made here so that dill pickles it by value (see the module's doc)."""

    class PackageBlobProvider(pulumi.dynamic.ResourceProvider):
        """`transport(method, url, headers, body) -> (status, headers, body)`, `credential` (with
        `get_token(scope)`) and `sleep` stand in for the network, Entra ID and time in tests."""

        def __init__(
            self,
            transport: Any = None,
            credential: Any = None,
            sleep: Any = None,
            role_wait_seconds: float = ROLE_WAIT_SECONDS,
        ) -> None:
            super().__init__()
            self.transport = transport
            self.credential = credential
            self.sleep = sleep
            self.role_wait_seconds = role_wait_seconds

        def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.CheckResult:
            failures = []
            for name in ("account_url", "container", "blob", "source", "sha256"):
                if not isinstance(news.get(name), str) or not news[name]:
                    failures.append(pulumi.dynamic.CheckFailure(name, f"{name} must be a non-empty string"))
            if isinstance(news.get("account_url"), str) and not news["account_url"].startswith("https://"):
                failures.append(pulumi.dynamic.CheckFailure("account_url", "must be an https:// URL"))
            return pulumi.dynamic.CheckResult(news, failures)

        def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
            # the source's path may differ between checkouts: only where the blob is and what it holds count
            replaces = [
                name for name in ("account_url", "container", "blob") if olds.get(name) != news.get(name)
            ]
            content = [name for name in ("sha256", "content_type") if olds.get(name) != news.get(name)]
            return pulumi.dynamic.DiffResult(
                changes=bool(replaces or content), replaces=replaces, delete_before_replace=False
            )

        def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
            outs = self.upload(props)
            return pulumi.dynamic.CreateResult(id_=outs["url"], outs=outs)

        def update(
            self, _id: str, _olds: dict[str, Any], news: dict[str, Any]
        ) -> pulumi.dynamic.UpdateResult:
            return pulumi.dynamic.UpdateResult(outs=self.upload(news))

        def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
            status, headers, body = self.request("HEAD", id_, {})
            if status == 404:
                return pulumi.dynamic.ReadResult(id_="", outs={})
            self.raise_for(status, headers, body, f"read {id_}")
            stored = {name.lower(): value for name, value in headers.items()}
            sha256 = stored.get("x-ms-meta-sha256", "")
            return pulumi.dynamic.ReadResult(
                id_=id_, outs={**props, "sha256": sha256, "etag": stored.get("etag")}
            )

        def delete(self, id_: str, _props: dict[str, Any]) -> None:
            status, headers, body = self.request("DELETE", id_, {})
            if status != 404:
                self.raise_for(status, headers, body, f"delete {id_}")

        def upload(self, props: dict[str, Any]) -> dict[str, Any]:
            import base64
            import hashlib

            url = f"{props['account_url'].rstrip('/')}/{props['container']}/{props['blob']}"
            content = Path(props["source"]).read_bytes()
            digest = hashlib.sha256(content).hexdigest()
            if digest != props["sha256"]:
                raise RuntimeError(
                    f"{props['source']} changed since the program read it (sha256 {digest[:12]}, "
                    f"expected {props['sha256'][:12]}): run the update again"
                )
            headers = {
                "x-ms-blob-type": "BlockBlob",
                "x-ms-blob-content-type": props.get("content_type") or "application/zip",
                "x-ms-meta-sha256": digest,
                "Content-Type": "application/octet-stream",
                "Content-MD5": base64.b64encode(hashlib.md5(content).digest()).decode(),
            }
            status, answer, body = self.request("PUT", url, headers, content)
            self.raise_for(status, answer, body, f"upload {url}")
            etag = {name.lower(): value for name, value in answer.items()}.get("etag")
            return {**props, "url": url, "etag": etag}

        def request(
            self, method: str, url: str, headers: dict[str, str], body: bytes | None = None
        ) -> tuple[int, dict[str, str], bytes]:
            """One Blob service call, tried again while the data plane refuses the deployer's new role."""
            import time

            sleep = self.sleep or time.sleep
            waited, pause = 0.0, 5.0
            while True:
                signed = {
                    **headers,
                    "Authorization": f"Bearer {self.token()}",
                    "x-ms-version": BLOB_API_VERSION,
                    "x-ms-date": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
                }
                status, answer, content = self.send(method, url, signed, body)
                refused = status == 403 and self.error_code(answer, content) in (
                    "AuthorizationPermissionMismatch",
                    "AuthorizationFailure",
                )
                if not refused or waited >= self.role_wait_seconds:
                    return status, answer, content
                sleep(pause)
                waited += pause
                pause = min(pause * 2, 60.0)

        def token(self) -> str:
            if self.credential is None:
                from azure.identity import DefaultAzureCredential

                self.credential = DefaultAzureCredential()
            return str(self.credential.get_token(STORAGE_SCOPE).token)

        def send(
            self, method: str, url: str, headers: dict[str, str], body: bytes | None
        ) -> tuple[int, dict[str, str], bytes]:
            if self.transport is not None:
                return tuple(self.transport(method, url, headers, body))  # type: ignore[return-value]
            import urllib.error
            import urllib.request

            request = urllib.request.Request(url, data=body, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=600) as response:
                    return response.status, dict(response.headers), response.read()
            except urllib.error.HTTPError as error:
                return error.code, dict(error.headers or {}), error.read()

        @staticmethod
        def error_code(headers: dict[str, str], body: bytes) -> str:
            import re

            lowered = {name.lower(): value for name, value in headers.items()}
            if lowered.get("x-ms-error-code"):
                return str(lowered["x-ms-error-code"])
            found = re.search(rb"<Code>([^<]+)</Code>", body or b"")
            return found.group(1).decode() if found else ""

        def raise_for(self, status: int, headers: dict[str, str], body: bytes, doing: str) -> None:
            if 200 <= status < 300:
                return
            code = self.error_code(headers, body) or "no error code"
            hint = (
                " (the deployer needs Storage Blob Data Contributor on the container, and"
                " DefaultAzureCredential must sign in as that deployer)"
                if status == 403
                else ""
            )
            raise RuntimeError(f"{doing}: HTTP {status} {code}{hint}")

    return PackageBlobProvider


BLOB_PROVIDER = _provider_class()
"""Not bound to the class's own name: dill would find it by name and pickle it by reference."""


@dataclass(frozen=True, slots=True)
class PackageBlobArgs:
    account_url: pulumi.Input[str]
    """`https://<account>.blob.core.windows.net/`"""
    container: pulumi.Input[str]
    blob: str
    source: Path
    sha256: str
    content_type: str = "application/zip"


class PackageBlob(pulumi.dynamic.Resource, module="meterline", name="PackageBlob"):
    url: pulumi.Output[str]

    def __init__(self, name: str, args: PackageBlobArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(
            BLOB_PROVIDER(),
            name,
            {
                "account_url": args.account_url,
                "container": args.container,
                "blob": args.blob,
                "source": str(args.source),
                "sha256": args.sha256,
                "content_type": args.content_type,
                "url": None,
                "etag": None,
            },
            opts,
        )
