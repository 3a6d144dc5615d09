"""`meterline cost`: what each billing cell costs per month and per million events.

The cost model, its price rows and its measured figures live in `infra/cost/`, next to the Pulumi
program whose outputs it prices; infra registers this command (see `infra.commands`).
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def add_parser(commands: argparse._SubParsersAction[Any]) -> None:
    cost = commands.add_parser(
        "cost",
        help="estimate each billing cell's monthly cost and cost per million events from its stack outputs",
        description="Price stack outputs (`pulumi stack output --json`, one file per stack) against public "
        "list prices and the pipeline's measured figures.",
    )
    cost.add_argument("outputs", nargs="*", type=Path, metavar="STACK_OUTPUT.json", help="one file per stack")
    cost.add_argument(
        "--offline",
        nargs="*",
        metavar="STACK",
        help="build the outputs with infra.preview under Pulumi mocks (all stacks in stacks/ if none named)",
    )
    cost.add_argument("--measured", type=Path, help="measured figures laid over infra/cost/measured.json")
    cost.add_argument(
        "--events-per-second", type=_volume, metavar="X", help="what-if: price every stack at this volume"
    )
    cost.add_argument("--json", action="store_true", help="print the review as JSON")
    cost.add_argument("--chart", type=Path, metavar="DIR", help="write cost-vs-volume.png and .html into DIR")
    cost.add_argument("--detail", action="store_true", help="also list every cost line with its unit price")
    cost.add_argument("--strict", action="store_true", help="exit 1 when anything is unpriced")
    cost.set_defaults(run=run_cost)


MAX_EVENTS_PER_SECOND = Decimal(1_000_000_000)
MIN_EVENTS_PER_SECOND = Decimal("0.001")
"""A what-if volume is 0 or between these: from a few thousand events a month to ~2.6 quadrillion.
Beyond them a cost per million events has more digits than exact decimal arithmetic keeps (28)."""


def _volume(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of events per second") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number, not negative")
    if value and not MIN_EVENTS_PER_SECOND <= value <= MAX_EVENTS_PER_SECOND:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be 0 or from {MIN_EVENTS_PER_SECOND} to {MAX_EVENTS_PER_SECOND:,}"
            " events per second"
        )
    return value


def run_cost(args: argparse.Namespace) -> int:
    if args.offline is not None and args.outputs:
        return _fail("give stack output files or --offline, not both")
    if args.offline is None and not args.outputs:
        return _fail("name stack output JSON files (pulumi stack output --json), or use --offline")
    from infra.cost import app

    request = app.Request(
        repo=REPO,
        files=args.outputs,
        offline=args.offline,
        measured=args.measured,
        events_per_second=args.events_per_second,
        as_json=args.json,
        chart_dir=args.chart,
        strict=args.strict,
        detail=args.detail,
    )
    try:
        return int(app.run(request))
    except app.CostError as error:
        return _fail(str(error))
    except ArithmeticError as error:  # decimal's Overflow or InvalidOperation: a figure out of all scale
        return _fail(
            f"a figure is too large or too small to price exactly ({type(error).__name__});"
            " check the figures of --measured"
        )


def _fail(message: str) -> int:
    print(f"meterline: error: {message}", file=sys.stderr)
    return 2
