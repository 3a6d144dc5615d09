"""The policy pack runs as Pulumi runs one: its directory's __main__.py, by path, with neither the
checkout nor its packages importable beforehand."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from infra.config import REPO_ROOT
from infra.policies.pack import rules

PACK = REPO_ROOT / "infra" / "policies"
# What `python -m pulumi.policy ENGINE PACK` does with the pack (runpy.run_path on its directory),
# with the PolicyPack that would start the analyzer server swapped for a recorder.
RUN_LIKE_PULUMI = """
import json, runpy, sys
import pulumi_policy
made = []
pulumi_policy.PolicyPack = lambda **pack: made.append(pack)
runpy.run_path(sys.argv[1], run_name="__main__")
import azure.identity  # not shadowed by the pack's azure.py
[pack] = made
print(json.dumps({"name": pack["name"], "policies": [policy.name for policy in pack["policies"]]}))
"""


def test_the_pack_declares_a_python_runtime_in_the_projects_virtualenv() -> None:
    declared = yaml.safe_load((PACK / "PulumiPolicy.yaml").read_text())
    assert declared["runtime"]["name"] == "python"
    assert (PACK / declared["runtime"]["options"]["virtualenv"]).resolve() == REPO_ROOT / ".venv"
    assert (PACK / "__main__.py").is_file()


def test_pulumi_runs_the_pack_by_path_and_it_serves_every_rule() -> None:
    # GIVEN a Python that cannot import infra (as the analyzer's), started in the pack's directory
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    # WHEN it runs the pack the way Pulumi's policy host does
    ran = subprocess.run(
        [sys.executable, "-c", RUN_LIKE_PULUMI, str(PACK)],
        cwd=PACK,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    # THEN the pack is built once, with every cloud's and the budget's rules
    assert ran.returncode == 0, ran.stderr[-800:]
    served = json.loads(ran.stdout.strip().splitlines()[-1])
    assert served == {"name": "meterline", "policies": [policy.name for policy in rules()]}
