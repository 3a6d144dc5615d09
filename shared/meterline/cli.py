"""The `meterline` command. Bad arguments or files end in a one-line error and exit 2; output that
cannot be written (a full disk, a closed pipe), in exit 1. Never a traceback for either."""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from decimal import Decimal, InvalidOperation
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path
from typing import BinaryIO, NoReturn
from urllib.parse import urlsplit

import orjson

from meterline import bench
from meterline.catalog import CatalogError, load_catalog, read_catalog_text, sample_catalog
from meterline.generate import MAX_EVENTS, FaultRates, GenerateError, GenerateSpec, generate, line_counts
from meterline.heap import collector_paused
from meterline.local.cells import CLOUDS, DEFAULT_CELLS, CellName, CellNameError, parse_cells, runnable_cells
from meterline.offline import CELL, rate_cells
from meterline.periods import Period, PeriodError

DEMO_TENANTS = 20
DEMO_EVENTS = 15_000
"""One AWS cell alone (--cloud aws): measured at 74 s on two cores (251 events/s end to end; the
moto server spends ~2 ms of CPU per event, its conditional put and the stream reads)."""
DEMO_EVENTS_GCP = 6_000
"""Measured at ~26 s on two cores: meter runs once per event as Pub/Sub pushes them; aggregate
drains Kafka in batches every second, as its schedule would every minute."""
DEMO_EVENTS_AZURE = 10_000
"""Measured at ~75 s on two cores (~150 events/s): meter and aggregate each read usage.events in
batches of up to 100, one Azure Tables call per record or so, on Azurite."""


DEMO_EVENTS_CELLS = 12_000
"""Over the default three cells (4,000 each), sized for three minutes on two cores, everything included."""


DEMO_MAX_EVENTS = 1_000_000
"""Two hours of the local pipeline at ~150 events/s, held in memory (~250 MB): for more, `meterline
generate` writes the file and `meterline rate` rates it."""


COMMANDS = "meterline.commands"
"""The entry point group of commands another package adds (each an ``add_parser(subparsers)``)."""


class UsageError(Exception):
    """A bad argument or input file: reported on one line, exit status 2."""


class OutputError(Exception):
    """Standard output could not be written: reported on one line, exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
        to_stdout(lambda out: None)  # what is still buffered fails here, not as the interpreter exits
    except UsageError as error:
        print(f"meterline: error: {error}", file=sys.stderr)
        return 2
    except (CatalogError, PeriodError) as error:
        print(f"meterline: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (| head): nothing to say, as cat says nothing
        _drop_stdout()
        return 1
    except (OutputError, OSError) as error:
        _drop_stdout()
        print(f"meterline: error: {_io_problem(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("meterline: interrupted", file=sys.stderr)
        return 130
    return status


def to_stdout(write: Callable[[BinaryIO], object]) -> None:
    """``write(stdout)``, flushed, its failure an OutputError (a BrokenPipeError stays one)."""
    try:
        write(sys.stdout.buffer)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as error:
        raise OutputError(f"cannot write to standard output ({error.strerror or error})") from None


def _drop_stdout() -> None:
    """Point standard output at /dev/null: what is still buffered is dropped as the interpreter exits,
    instead of failing a second time with a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):  # no file descriptor (tests capture it)
        pass


def _io_problem(error: Exception) -> str:
    if isinstance(error, OSError):
        return f"{error.filename}: {error.strerror}" if error.filename else (error.strerror or str(error))
    return str(error)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="meterline", description="Usage-based billing: meter, aggregate, rate, invoice.")
    commands = parser.add_subparsers(title="commands", required=True, parser_class=_Parser)

    rate = commands.add_parser("rate", help="rate NDJSON event files offline and print the invoices as JSON")
    rate.add_argument("--catalog", required=True, type=Path, help="catalog YAML (meters, plans, customers)")
    rate.add_argument(
        "--usage",
        required=True,
        nargs="+",
        action="extend",
        metavar="[CELL=]FILE",
        help="NDJSON usage events, one file per cell (a bare FILE is the cell 'local'; - is standard input)",
    )
    rate.add_argument("--period", type=_period, help="billing month, YYYY-MM (UTC): prints one document")
    rate.add_argument("--from", dest="first", type=_period, metavar="PERIOD", help="first month of a range")
    rate.add_argument(
        "--to", dest="last", type=_period, metavar="PERIOD", help="last month: prints one document per month"
    )
    rate.set_defaults(run=run_rate)
    bench.add_parser(commands)

    for command in sorted(entry_points(group=COMMANDS), key=lambda entry: entry.name):
        command.load()(commands)  # e.g. infra's cost, stacks and smoke

    generate = commands.add_parser("generate", help="write a realistic month of usage events as NDJSON")
    generate.add_argument("--period", required=True, type=_period, help="the month, YYYY-MM (UTC)")
    generate.add_argument("--tenants", type=int, default=20, help="tenants: the catalog's customers first")
    generate.add_argument("--seed", type=int, default=1, help="same seed, same bytes")
    generate.add_argument("--events", type=int, default=100_000, help="lines to write, faults included")
    generate.add_argument("--catalog", type=Path, help="catalog YAML (default: the bundled sample)")
    generate.add_argument("--out", default="-", help="NDJSON file to write, or - for standard output")
    _fault_rates(generate)
    generate.set_defaults(run=run_generate)

    demo = commands.add_parser(
        "demo", help="a generated month through the local pipeline (Kafka, moto, the Lambda handlers)"
    )
    demo.add_argument("--period", type=_period, default=Period(2026, 11), help="the month (default 2026-11)")
    demo.add_argument(
        "--tenants", type=int, default=DEMO_TENANTS, help="tenants: the catalog's customers first"
    )
    demo.add_argument(
        "--events",
        type=int,
        help=f"events to generate, faults included, over every cell (default {DEMO_EVENTS_CELLS:,};"
        f" with --cloud, {DEMO_EVENTS:,} on aws, {DEMO_EVENTS_GCP:,} on gcp, {DEMO_EVENTS_AZURE:,} on azure)",
    )
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--catalog", type=Path, help="catalog YAML (default: the bundled sample)")
    demo.add_argument("--out", type=Path, default=Path("out"), help="directory for the files it writes")
    demo.add_argument(
        "--kafka",
        metavar="HOST:PORT",
        type=_host_port,
        help="use this Kafka broker instead of starting Tansu",
    )
    demo.add_argument(
        "--aws-endpoint", metavar="URL", type=_endpoint, help="use this moto server instead of starting one"
    )
    demo.add_argument(
        "--cells",
        type=_cells,
        help="the deployment's cells, <cloud>-<region> separated by commas (default"
        f" {','.join(DEFAULT_CELLS)})",
    )
    demo.add_argument(
        "--cloud",
        choices=CLOUDS,
        help="one cell only, of this cloud's functions and triggers: aws (Lambda on moto), gcp (Cloud"
        " Run on the Firestore emulator), azure (the Function App on Azurite)",
    )
    _fault_rates(demo)
    demo.set_defaults(run=run_demo)
    return parser


def _fault_rates(parser: argparse.ArgumentParser) -> None:
    for fault, default in (
        ("duplicate", "0.01"),
        ("conflict", "0.005"),
        ("late", "0.01"),
        ("malformed", "0.01"),
    ):
        parser.add_argument(f"--{fault}-rate", type=_rate, default=Decimal(default), help="share of lines")


def _period(text: str) -> Period:
    try:
        return Period.parse(text)
    except PeriodError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _host_port(text: str) -> str:
    host, _, port = text.rpartition(":")
    if not host or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (a port from 1 to 65535)")
    return text


def _endpoint(text: str) -> str:
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError:
        url, port = urlsplit(""), None
    if url.scheme not in ("http", "https") or not url.hostname or port == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text


def _cells(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(","))
    try:
        parse_cells(names)
    except CellNameError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return names


def _rate(text: str) -> Decimal:
    try:
        rate = Decimal(text)
    except InvalidOperation:
        rate = Decimal("NaN")
    if not rate.is_finite() or not 0 <= rate <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1")
    return rate


def run_generate(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.catalog) if args.catalog else sample_catalog()
    faults = FaultRates(args.duplicate_rate, args.conflict_rate, args.late_rate, args.malformed_rate)
    spec = GenerateSpec(args.period, args.tenants, args.seed, args.events, faults)
    try:
        lines = generate(catalog, spec)  # checks the arguments before the first line
    except GenerateError as error:
        raise UsageError(str(error)) from None
    if args.out == "-":
        to_stdout(lambda out: out.writelines(lines))
        return 0
    try:
        with Path(args.out).open("wb") as out:
            out.writelines(lines)
    except OSError as error:
        raise UsageError(f"{args.out}: cannot write events ({error.strerror})") from None
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from rich.console import Console  # the `cli` extra: only the commands that draw need it

    from meterline.local import demo, demo_cells

    if args.cloud and args.cells:
        raise UsageError("--cloud runs one cell, --cells several: give one of them")
    if args.cloud is None and (args.kafka or args.aws_endpoint):
        raise UsageError("--kafka and --aws-endpoint serve one cell: give --cloud too")
    cells = () if args.cloud else args.cells or DEFAULT_CELLS
    clouds = sorted({CellName.parse(name).cloud for name in cells}) if cells else [args.cloud]
    if args.aws_endpoint and args.cloud != "aws":
        raise UsageError(f"--aws-endpoint is a moto server for --cloud aws, not for --cloud {args.cloud}")
    if args.events is None:
        single = {"gcp": DEMO_EVENTS_GCP, "azure": DEMO_EVENTS_AZURE}.get(args.cloud, DEMO_EVENTS)
        args.events = DEMO_EVENTS_CELLS if cells else single
    if args.events > DEMO_MAX_EVENTS:
        raise UsageError(
            f"--events: the demo runs at most {DEMO_MAX_EVENTS:,} (hours of the local pipeline);"
            f" `meterline generate` and `meterline rate` take up to {MAX_EVENTS:,}"
        )
    if args.catalog:
        catalog_text, catalog_name = read_catalog_text(args.catalog), str(args.catalog)
    else:
        sample = resources.files("meterline").joinpath("samples", "catalog.yaml")
        catalog_text, catalog_name = sample.read_text(encoding="utf-8"), "meterline/samples/catalog.yaml"
    faults = FaultRates(args.duplicate_rate, args.conflict_rate, args.late_rate, args.malformed_rate)
    spec = demo.DemoSpec(
        args.period,
        args.tenants,
        args.events,
        args.seed,
        args.out,
        faults,
        catalog_text,
        catalog_name,
        args.kafka,
        args.aws_endpoint,
        args.cloud or "aws",
        cells,
    )
    try:
        line_counts(GenerateSpec(spec.period, spec.tenants, spec.seed, spec.events, faults))
    except GenerateError as error:
        raise UsageError(str(error)) from None
    if cells and not args.cells:  # the default deployment: stand-by AWS cells for what cannot run here
        cells, notes = runnable_cells(cells, demo.unavailable)
        for note in notes:
            print(f"meterline demo: {note}", file=sys.stderr)
        clouds = sorted({CellName.parse(name).cloud for name in cells})
        spec = dataclasses.replace(spec, cells=cells)
    for cloud in clouds:
        if reason := demo.unavailable(cloud):
            raise UsageError(reason)
    _make_out(args.out)
    from meterline.local.process import StoppedError, stopped_by_signals

    try:
        with stopped_by_signals():  # SIGTERM and SIGHUP stop the servers as Ctrl-C does
            outcome = demo_cells.run_cells(spec, Console()) if cells else demo.run(spec, Console())
    except demo.LocalRunError as error:
        print(f"meterline demo: error: {error}", file=sys.stderr)
        return 1
    except StoppedError as stopped:
        # Every server is down by now, but a Kafka client's background thread may still log its
        # failed reconnects while the interpreter winds down: the stop line must be the last word.
        print(f"meterline: {stopped}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + stopped.signum)
    return 0 if outcome.ok else 1


def _make_out(out: Path) -> None:
    """The demo's --out directory, there and writable, before any server starts."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {out}: cannot make the directory ({error.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: cannot write there (permission denied)")


def run_rate(args: argparse.Namespace) -> int:
    first, last = rating_periods(args.period, args.first, args.last)
    cells = usage_cells(args.usage)
    catalog = load_catalog(args.catalog)
    with ExitStack() as files:
        streams = {cell: (name, files.enter_context(open_usage(name))) for cell, name in cells.items()}
        lines = {cell: read_lines(stream, name) for cell, (name, stream) in streams.items()}
        results = rate_cells(catalog, lines, first, last)
    with collector_paused():  # JSON trees: a collection would only walk the invoices again
        rated = results[0].to_json() if args.period else [result.to_json() for result in results]
    document = orjson.dumps(rated, option=orjson.OPT_INDENT_2) + b"\n"
    to_stdout(lambda out: out.write(document))
    return 0


def rating_periods(period: Period | None, first: Period | None, last: Period | None) -> tuple[Period, Period]:
    """--period P, or --from P1 --to P2 (P1 not after P2)."""
    if period is not None:
        if first is not None or last is not None:
            raise UsageError("give --period, or --from and --to, not both")
        return period, period
    if first is None and last is None:
        raise UsageError("give the period to rate: --period YYYY-MM, or --from YYYY-MM --to YYYY-MM")
    if first is None or last is None:
        raise UsageError("--from and --to go together: give both")
    if first > last:
        raise UsageError(f"--from {first} is after --to {last}")
    return first, last


_CELL = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]*)=(.+)", re.ASCII | re.DOTALL)


def usage_cells(arguments: Sequence[str]) -> dict[str, str]:
    """Each --usage argument's cell and file: CELL=FILE, or a bare FILE for the cell 'local'."""
    cells: dict[str, str] = {}
    for argument in arguments:
        match = _CELL.fullmatch(argument)
        cell, name = (match.group(1), match.group(2)) if match else (CELL, argument)
        if cell in cells:
            raise UsageError(
                f"--usage: cell {cell!r} is given twice ({cells[cell]}, {name}): one file per cell"
                + (" (a FILE without CELL= is the cell 'local')" if cell == CELL else "")
            )
        cells[cell] = name
    if list(cells.values()).count("-") > 1:
        raise UsageError("--usage: standard input (-) can be read once")
    return cells


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


MAX_LINE_BYTES = 1 << 20
"""Kafka's default largest message (``message.max.bytes``, ~1 MB): no longer event reaches the
pipeline. A longer line is rated from its first MiB only (JSON cut short: malformed), its rest
skipped unread into memory, so one endless line (``--usage /dev/zero``) cannot exhaust it."""


def read_lines(stream: BinaryIO, name: str) -> Iterator[bytes]:
    try:
        while line := stream.readline(MAX_LINE_BYTES + 1):
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                line = line[:MAX_LINE_BYTES]
            yield line
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
