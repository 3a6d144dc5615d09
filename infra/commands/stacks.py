"""`meterline stacks`: the billing cells' Pulumi stacks, built offline under mocks.

The Pulumi program is `infra/`, which registers this command (see `infra.commands`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson


def add_parser(commands: argparse._SubParsersAction[Any]) -> None:
    stacks = commands.add_parser("stacks", help="list the billing cells' stacks, or preview one offline")
    actions = stacks.add_subparsers(title="actions", required=True, parser_class=type(stacks))
    listing = actions.add_parser("list", help="the stack files in stacks/")
    listing.set_defaults(run=run_list)
    preview = actions.add_parser(
        "preview", help="build a stack's program under Pulumi mocks (offline) and print resources and outputs"
    )
    preview.add_argument("stack", nargs="?", help="e.g. aws-us-east-1 (every stack when omitted)")
    preview.add_argument("--json", action="store_true", help="print the full build as JSON")
    preview.set_defaults(run=run_preview)


def run_list(args: argparse.Namespace) -> int:
    from infra import config

    for name in config.stack_names():
        print(name)
    return 0


def run_preview(args: argparse.Namespace) -> int:
    from infra import config, preview

    names: list[str] = [args.stack] if args.stack else config.stack_names()
    known = set(config.stack_names())
    for name in names:
        if name not in known:
            return _fail(f"no stack {name!r}: stacks/ holds {', '.join(sorted(known)) or 'none'}")
    builds: list[dict[str, Any]] = []
    for name in names:
        try:
            builds.append(preview.preview_stack(name))
        except preview.PreviewError as error:
            return _fail(str(error))
    if args.json:
        document: Any = builds[0] if args.stack else builds
        sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    for build in builds:
        _print_summary(build)
    return 0


def _print_summary(build: dict[str, Any]) -> None:
    resources = [r for r in build["resources"] if not r["type"].startswith("meterline:")]
    print(f"{build['stack']}: {len(resources)} resources")
    for resource in resources:
        inputs = resource["inputs"]
        label = inputs.get("name") or inputs.get("clusterName") or inputs.get("dashboardName") or ""
        print(f"  {resource['type']:<60} {resource['name']:<28} {label}")
    outputs = {key: value for key, value in build["outputs"].items() if key != "cost_inputs"}
    print(orjson.dumps(outputs, option=orjson.OPT_INDENT_2).decode())


def _fail(message: str) -> int:
    print(f"meterline: error: {message}", file=sys.stderr)
    return 2
