"""`meterline smoke --stack NAME`: check a deployed billing cell end to end in minutes.

The catalog the cell rates with is the one its stack file names (or --catalog); the stack's outputs
come from `pulumi stack output` (or --outputs). infra registers this command (see `infra.commands`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(commands: argparse._SubParsersAction[Any]) -> None:
    smoke = commands.add_parser(
        "smoke",
        help="send a few hundred events to a deployed cell and report what was metered and rated",
        description="Publish events for one tenant to the cell's usage.events, then wait until each is "
        "metered and the tenant's running charges are rewritten. The usage is billed to that tenant: "
        "name an internal test customer.",
    )
    smoke.add_argument("--stack", required=True, help="e.g. aws-us-east-1")
    smoke.add_argument("--tenant", required=True, help="a catalog customer to bill the smoke usage to")
    smoke.add_argument(
        "--outputs", type=Path, help="the stack's `pulumi stack output --json` (default: ask pulumi)"
    )
    smoke.add_argument(
        "--catalog", type=Path, help="the cell's catalog (default: the one its stack file names)"
    )
    smoke.add_argument("--events", type=_positive, default=300, metavar="N", help="events to send (300)")
    smoke.add_argument("--timeout", type=_positive, default=600, metavar="SECONDS", help="wait at most (600)")
    smoke.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a cell setting, e.g. METERLINE_KAFKA_AUTH=none for a local broker",
    )
    smoke.set_defaults(run=run_smoke)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def run_smoke(args: argparse.Namespace) -> int:
    from meterline.local.smoke import SmokeError, smoke_stack

    overrides = {}
    for setting in args.set:
        name, equals, value = setting.partition("=")
        if not equals or not name:
            return _fail(f"--set {setting!r}: expected NAME=VALUE")
        overrides[name] = value
    try:
        catalog = args.catalog or _stack_catalog(args.stack)
        report = smoke_stack(
            args.stack, args.outputs, catalog, args.tenant, args.events, args.timeout, overrides
        )
    except SmokeError as error:
        return _fail(str(error))
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def _stack_catalog(stack: str) -> Path:
    from infra.config import ConfigError, load_stack_config, read_stack_file
    from meterline.local.smoke import SmokeError

    try:
        catalog: Path = load_stack_config(stack, read_stack_file(stack)).catalog
    except ConfigError as error:
        raise SmokeError(str(error)) from None
    return catalog


def _fail(message: str) -> int:
    print(f"meterline: error: {message}", file=sys.stderr)
    return 2
