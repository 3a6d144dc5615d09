"""The `meterline` command. Bad arguments or files end in a one-line error and exit 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, NoReturn

import orjson

from meterline.catalog import CatalogError, load_catalog
from meterline.offline import rate_lines
from meterline.periods import Period, PeriodError


class UsageError(Exception):
    """A bad argument or input file: reported on one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except UsageError as error:
        print(f"meterline: error: {error}", file=sys.stderr)
        return 2
    except (CatalogError, PeriodError) as error:
        print(f"meterline: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        print("meterline: interrupted", file=sys.stderr)
        return 130
    return status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="meterline", description="Usage-based billing: meter, aggregate, rate, invoice.")
    commands = parser.add_subparsers(title="commands", required=True, parser_class=_Parser)

    rate = commands.add_parser(
        "rate", help="rate an NDJSON event file offline and print the invoices as JSON"
    )
    rate.add_argument("--catalog", required=True, type=Path, help="catalog YAML (meters, plans, customers)")
    rate.add_argument("--usage", required=True, help="NDJSON usage events, or - for standard input")
    rate.add_argument("--period", required=True, type=_period, help="billing month, YYYY-MM (UTC)")
    rate.set_defaults(run=run_rate)
    return parser


def _period(text: str) -> Period:
    try:
        return Period.parse(text)
    except PeriodError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run_rate(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.catalog)
    with open_usage(args.usage) as stream:
        result = rate_lines(catalog, read_lines(stream, args.usage), args.period)
    sys.stdout.buffer.write(orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2) + b"\n")
    return 0


def open_usage(name: str) -> BinaryIO:
    if name == "-":
        return _NoClose(sys.stdin.buffer)  # type: ignore[return-value]
    path = Path(name)
    if path.is_dir():
        raise UsageError(f"{name}: is a directory, not an NDJSON file")
    try:
        return path.open("rb")
    except OSError as error:
        raise UsageError(f"{name}: cannot read usage ({error.strerror})") from None


def read_lines(stream: BinaryIO, name: str) -> Iterator[bytes]:
    try:
        yield from stream
    except OSError as error:
        raise UsageError(f"{name}: read failed ({error.strerror})") from None


class _NoClose:
    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def __enter__(self) -> BinaryIO:
        return self.stream

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
