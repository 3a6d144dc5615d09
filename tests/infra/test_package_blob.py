"""The Azure package upload: Put Blob with an Entra ID token (no shared keys), waiting out a role
assignment that has not reached the data plane yet; the provider Pulumi keeps in the stack's state
loads where `infra` cannot be imported."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.components.azure.package_blob import BLOB_PROVIDER, STORAGE_SCOPE
from infra.mocks import PACKAGE_BLOB
from tests.infra.builds import of_type

ACCOUNT = "https://mleushost0123456789abcd.blob.core.windows.net/"
DENIED = (403, {"x-ms-error-code": "AuthorizationPermissionMismatch"}, b"")


class Token:
    def __init__(self, token: str) -> None:
        self.token = token


class Credential:
    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, scope: str) -> Token:
        self.scopes.append(scope)
        return Token("entra-token")


class BlobService:
    """Answers Blob service calls from a script of responses (the last one repeats), and keeps them."""

    def __init__(self, *responses: tuple[int, dict[str, str], bytes]) -> None:
        self.responses = list(responses) or [(201, {"ETag": '"0x1"'}, b"")]
        self.calls: list[tuple[str, str, dict[str, str], bytes | None]] = []

    def __call__(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        self.calls.append((method, url, headers, body))
        return self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]


def package(tmp_path: Path, content: bytes = b"PK-package") -> dict[str, Any]:
    source = tmp_path / "meter.zip"
    source.write_bytes(content)
    return {
        "account_url": ACCOUNT,
        "container": "meter-package",
        "blob": "released-package.zip",
        "source": str(source),
        "sha256": hashlib.sha256(content).hexdigest(),
        "content_type": "application/zip",
    }


def provider(service: BlobService, waits: list[float] | None = None, wait_seconds: float = 600) -> Any:
    sleeps = waits if waits is not None else []
    return BLOB_PROVIDER(service, Credential(), sleeps.append, wait_seconds)


def test_a_package_is_put_as_a_block_blob_with_a_bearer_token_and_its_digest(tmp_path: Path) -> None:
    # GIVEN a package and a Blob service that takes it
    service = BlobService()
    props = package(tmp_path)
    uploader = provider(service)
    # WHEN the resource is created
    result = uploader.create(props)
    # THEN one Put Blob carried the bytes, an Entra token for storage, and the package's digest
    [(method, url, headers, body)] = service.calls
    assert (method, url) == ("PUT", f"{ACCOUNT}meter-package/released-package.zip")
    assert body == b"PK-package" and headers["Authorization"] == "Bearer entra-token"
    assert headers["x-ms-blob-type"] == "BlockBlob" and headers["x-ms-meta-sha256"] == props["sha256"]
    assert "x-ms-version" in headers and not any("SharedKey" in value for value in headers.values())
    assert uploader.credential.scopes == [STORAGE_SCOPE]
    assert result.id == url and result.outs["etag"] == '"0x1"'


def test_an_upload_waits_until_the_new_role_reaches_the_data_plane(tmp_path: Path) -> None:
    # GIVEN a service that refuses the deployer twice (its role assignment is still propagating)
    service = BlobService(DENIED, DENIED, (201, {}, b""))
    waits: list[float] = []
    # WHEN the package is uploaded  THEN it is tried again after growing pauses, and goes through
    provider(service, waits).create(package(tmp_path))
    assert len(service.calls) == 3 and waits == [5.0, 10.0]


def test_an_upload_refused_for_longer_than_a_role_takes_fails_on_one_line_naming_the_role(
    tmp_path: Path,
) -> None:
    service = BlobService(DENIED)
    with pytest.raises(RuntimeError) as refused:
        provider(service, wait_seconds=30).create(package(tmp_path))
    message = str(refused.value)
    assert (
        "HTTP 403 AuthorizationPermissionMismatch" in message and "Storage Blob Data Contributor" in message
    )
    assert "\n" not in message and len(service.calls) == 4  # 5 + 10 + 20 s of waiting, then it gives up


def test_other_failures_are_not_retried(tmp_path: Path) -> None:
    service = BlobService((409, {}, b"<Error><Code>ContainerBeingDeleted</Code></Error>"))
    with pytest.raises(RuntimeError, match="HTTP 409 ContainerBeingDeleted"):
        provider(service).create(package(tmp_path))
    assert len(service.calls) == 1


def test_a_package_changed_since_the_program_read_it_is_not_uploaded(tmp_path: Path) -> None:
    props = package(tmp_path)
    Path(props["source"]).write_bytes(b"rebuilt meanwhile")
    service = BlobService()
    with pytest.raises(RuntimeError, match="changed since the program read it"):
        provider(service).create(props)
    assert service.calls == []


@pytest.mark.parametrize(
    ("change", "changes", "replaces"),
    [
        ({"source": "/elsewhere/meter.zip"}, False, []),  # another checkout, the same bytes
        ({"sha256": "0" * 64}, True, []),  # new content: upload again in place
        ({"container": "other-package"}, True, ["container"]),  # elsewhere: a new blob
        ({"account_url": "https://other.blob.core.windows.net/"}, True, ["account_url"]),
    ],
)
def test_only_where_the_blob_lives_and_what_it_holds_make_a_difference(
    tmp_path: Path, change: dict[str, str], changes: bool, replaces: list[str]
) -> None:
    olds = package(tmp_path)
    result = provider(BlobService()).diff("id", olds, {**olds, **change})
    assert (result.changes, result.replaces) == (changes, replaces)


def test_delete_tolerates_a_blob_already_gone_and_read_reports_it_gone(tmp_path: Path) -> None:
    service = BlobService((404, {"x-ms-error-code": "BlobNotFound"}, b""))
    uploader = provider(service)
    uploader.delete(f"{ACCOUNT}meter-package/released-package.zip", package(tmp_path))
    assert uploader.read(f"{ACCOUNT}meter-package/released-package.zip", package(tmp_path)).id == ""


def test_read_takes_the_digest_from_the_blobs_metadata(tmp_path: Path) -> None:
    service = BlobService((200, {"x-ms-meta-sha256": "ab" * 32, "ETag": '"0x2"'}, b""))
    read = provider(service).read(f"{ACCOUNT}meter-package/released-package.zip", package(tmp_path))
    assert read.outs["sha256"] == "ab" * 32 and service.calls[0][0] == "HEAD"


def test_check_names_each_missing_input() -> None:
    failures = BLOB_PROVIDER().check({}, {"account_url": "http://plain", "container": "c"}).failures
    assert sorted(f.property for f in failures) == ["account_url", "blob", "sha256", "source"]


def test_the_provider_in_a_stacks_state_loads_without_the_checkout_on_the_path(
    previews: dict[str, Any],
) -> None:
    # GIVEN the serialized provider the Azure stack hands the engine with each package
    [blob, *_] = of_type(previews["azure-eastus"], PACKAGE_BLOB)
    provider_input = blob["inputs"]["__provider"]  # a secret: the mocks see it wrapped, its text in "value"
    serialized = provider_input["value"] if isinstance(provider_input, dict) else provider_input
    # WHEN a Python with neither infra nor meterline importable loads it (as Pulumi's provider process)
    code = (
        "import base64, sys, dill\n"
        # an editable install of this checkout makes infra importable from anywhere: drop its finder
        "sys.meta_path[:] = [f for f in sys.meta_path if not f.__module__.startswith('__editable__')]\n"
        "provider = dill.loads(base64.b64decode(sys.stdin.read()))\n"
        "import importlib.util\n"
        "assert importlib.util.find_spec('infra') is None\n"
        "result = provider.diff('id', {'sha256': 'a', 'container': 'c'}, {'sha256': 'b', 'container': 'c'})\n"
        "print(result.changes, result.replaces)\n"
    )
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    ran = subprocess.run(
        [sys.executable, "-c", code], input=serialized, text=True, capture_output=True, cwd="/", env=env
    )
    # THEN it loads and decides like the class it was made from
    assert ran.returncode == 0, ran.stderr[-500:]
    assert ran.stdout.strip() == "True []"
