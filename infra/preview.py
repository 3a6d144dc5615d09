"""Build a stack's program offline under Pulumi mocks and report its resources and outputs.

Pulumi's mocks can be set once per process, so `preview_stack` runs each build in a fresh
interpreter (`python -m infra.preview STACK`) and reads its JSON. Offline means no cloud calls
and no package downloads: the dependency layer's archive is planned, not fetched.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from typing import Any

from infra.config import PROJECT, REPO_ROOT, ConfigError, read_stack_file

_PROGRAM = REPO_ROOT / "infra" / "__main__.py"
_built_in_this_process = False


class PreviewError(RuntimeError):
    """A stack that does not build: the program's own one-line error."""


def preview_stack(stack_name: str) -> dict[str, Any]:
    """`{"stack", "resources": [{"type", "name", "inputs", "dependencies", "protect",
    "retain_on_delete", "parent"}], "outputs": {... "cost_inputs"}, "references": [stack]}`;
    `dependencies` (what the resource waits for) and `parent` name resources as `TYPE::NAME`;
    `references` are the stacks it reads by `pulumi.StackReference`."""
    env = {
        **os.environ,
        "METERLINE_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(
            [str(REPO_ROOT), str(REPO_ROOT / "shared"), os.environ.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep),
    }
    result = subprocess.run(
        [sys.executable, "-m", "infra.preview", stack_name],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no output"]
        raise PreviewError(lines[-1].removeprefix("error: "))
    built: dict[str, Any] = json.loads(result.stdout)
    return built


def build_in_this_process(stack_name: str) -> dict[str, Any]:
    """Set the mocks (once per process), run infra/__main__.py for `stack_name`, collect the result."""
    global _built_in_this_process
    if _built_in_this_process:
        raise RuntimeError("Pulumi mocks are set once per process: build another stack in a subprocess")
    _built_in_this_process = True
    import pulumi
    from pulumi.runtime.config import set_all_config

    from infra.mocks import CellMocks

    raw = read_stack_file(stack_name)
    region = raw.get("aws:region") or raw.get("gcp:region") or raw.get("azure-native:location")
    mocks = CellMocks(region or "us-east-1", raw.get("gcp:project", "meterline-test"))
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack_name, preview=False)
    mocks.watch(pulumi.runtime.settings.get_monitor())
    set_all_config(raw)
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        runpy.run_path(str(_PROGRAM), run_name="__main__")
        root = pulumi.runtime.get_root_resource()
        exported = getattr(root, "outputs", {})
        return pulumi.Output.from_input(exported).apply(outputs.update)

    program()
    return {
        "stack": stack_name,
        "resources": mocks.recorded(),
        "outputs": outputs,
        "references": sorted(mocks.references),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m infra.preview STACK", file=sys.stderr)
        return 2
    os.environ.setdefault("METERLINE_OFFLINE", "1")
    try:
        built = build_in_this_process(argv[0])
    except (ConfigError, PreviewError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # the program's RunError and friends: report, do not dump a traceback
        message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        print(f"error: stack {argv[0]}: {message}", file=sys.stderr)
        return 1
    print(json.dumps(built, default=str, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
