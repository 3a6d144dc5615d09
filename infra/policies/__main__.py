"""Entry point of the policy pack (PulumiPolicy.yaml): Pulumi runs this file by path, with this
directory first on `sys.path` and the checkout nowhere on it. So the checkout goes on the path (as
infra/__main__.py does for the program) and this directory comes off it: its aws.py, gcp.py and
azure.py would otherwise shadow the cloud SDKs' top-level packages (`azure.identity`)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parents[1]
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path[:0] = [str(_ROOT), str(_ROOT / "shared")]

from infra.policies.pack import serve  # noqa: E402

serve()
