"""The one place that sets Pulumi mocks for this test process (once, preview=False so every
output resolves and no assertion is skipped). Other stacks build in subprocesses."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

os.environ["METERLINE_OFFLINE"] = "1"

from infra.config import stack_names
from infra.preview import build_in_this_process, preview_stack

IN_PROCESS_STACK = "aws-us-east-1"


@pytest.fixture(scope="session")
def cell() -> dict[str, Any]:
    """aws-us-east-1 built in this process under the session's mocks."""
    return build_in_this_process(IN_PROCESS_STACK)


@pytest.fixture(scope="session")
def previews() -> dict[str, dict[str, Any]]:
    """Every stack in stacks/, each built in its own interpreter."""
    names = stack_names()
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return dict(zip(names, pool.map(preview_stack, names), strict=True))


def pytest_configure(config: pytest.Config) -> None:
    # pulumi_aws warns about its own deprecated S3 v2 classes on import; they are not ours.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pulumi_aws.*")
