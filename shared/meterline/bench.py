"""`meterline bench`: events per second of the exact path against the simplest fast path.

On N synthetic events it measures, in one run, each path in a fresh process of its own (so each
peak RSS is that path's, not the generator's), in rounds of both (three by default: the report is
the round with the median ratio, and every round's ratio is printed):

(a) the baseline: ``orjson.loads`` per line and a dict sum per (subject, type, hour);
(b) meterline's path: exactly ``rate_lines`` (exact parse, validate, dedup, aggregate, then rate
    every customer and writing the invoices as JSON, as `meterline rate` does), timed in its two
    halves, metering and rating.

The events come from a fixed seed, written once to a temporary NDJSON file (not timed); each path
reads the file's lines into memory before its clock starts, so neither clock counts any I/O.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import orjson

from meterline.catalog import Catalog, parse_catalog
from meterline.heap import collector_paused
from meterline.offline import meter_lines, rate_book
from meterline.periods import Period

_Result = TypeVar("_Result")

PERIOD = Period(2026, 11)
CUSTOMERS = 1_000
ROUNDS = 3
"""Rounds of the two paths, one after the other; the report is the median round's."""
UNBILLED = 10
"""Tenants with usage but no customer entry."""

_METERS_AND_PLANS = """\
meters:
  - {key: ingress_gb, event_type: kafka.ingress, aggregation: sum, value: bytes,
     divide_by: "1000000000", group_by: [cluster]}
  - {key: ingress_requests, event_type: kafka.ingress, aggregation: count}
  - {key: egress_gb, event_type: kafka.egress, aggregation: sum, value: bytes, divide_by: "1000000000"}
  - {key: partitions_peak, event_type: kafka.partitions, aggregation: max, value: partitions,
     group_by: [cluster]}
  - {key: api_calls, event_type: api.request, aggregation: count, group_by: [endpoint]}
  - {key: active_users, event_type: api.request, aggregation: unique_count, value: user}
  - {key: storage_gb_hours, event_type: storage.snapshot, aggregation: time_weighted, value: gb,
     group_by: [cluster]}
  - {key: storage_gb, event_type: storage.snapshot, aggregation: latest, value: gb}
plans:
  - key: starter
    version: 1
    effective_from: "2026-01-01"
    currency: USD
    charges:
      - {meter: ingress_gb, model: per_unit, unit_price: "0.10"}
      - {meter: egress_gb, model: per_unit, unit_price: "0.05"}
      - {meter: api_calls, model: package, package_size: "1000", package_price: "0.10"}
      - {key: platform, model: flat, amount: "29.00"}
  - key: standard
    version: 1
    effective_from: "2026-01-01"
    currency: USD
    charges:
      - {meter: ingress_gb, model: per_unit, unit_price: "0.09"}
      - {key: support, model: flat, amount: "99.00"}
  - key: standard
    version: 2
    effective_from: "2026-10-01"
    currency: USD
    charges:
      - meter: ingress_gb
        model: graduated
        tiers:
          - {up_to: "1", unit_price: "0.08"}
          - {up_to: null, unit_price: "0.06", flat_fee: "1.00"}
      - {meter: egress_gb, model: per_unit, unit_price: "0.04"}
      - {meter: partitions_peak, model: per_unit, unit_price: "0.50"}
      - {meter: api_calls, model: package, package_size: "1000", package_price: "0.08"}
      - {meter: active_users, model: per_unit, unit_price: "0.02"}
      - {meter: storage_gb_hours, model: per_unit, unit_price: "0.0001"}
      - {key: support, model: flat, amount: "99.00"}
    discount_percent: "5"
  - key: enterprise
    version: 1
    effective_from: "2026-01-01"
    currency: EUR
    charges:
      - meter: ingress_gb
        model: volume
        tiers:
          - {up_to: "10", unit_price: "0.07"}
          - {up_to: null, unit_price: "0.05"}
      - {meter: egress_gb, model: per_unit, unit_price: "0.03"}
      - {meter: ingress_requests, model: package, package_size: "100000", package_price: "1.00"}
      - {meter: partitions_peak, model: per_unit, unit_price: "0.40"}
      - {meter: storage_gb, model: per_unit, unit_price: "0.10"}
    discount_percent: "10"
    minimum_commit: "500.00"
customers:
"""

_PLANS = ("starter", "standard", "enterprise")
_ENDPOINTS = ("/v1/produce", "/v1/consume", "/v1/topics", "/v1/acls")


def bench_catalog() -> Catalog:
    customers = [
        f"  - {{tenant: {_tenant(i)}, plan: {_PLANS[i % 3]}"
        + (', credits: "25.00"' if i % 7 == 0 else "")
        + "}\n"
        for i in range(CUSTOMERS)
    ]
    return parse_catalog(_METERS_AND_PLANS + "".join(customers), "<bench catalog>")


def _tenant(number: int) -> str:
    return f"org-{number:04d}"


def generate_events(count: int, seed: int = 2026) -> Iterator[bytes]:
    """NDJSON lines: mostly valid November usage, with ~1% fractional decimals, ~0.2% duplicates,
    ~0.05% conflicts, ~0.5% late October events and a few invalid values."""
    rng = random.Random(seed)
    earlier: list[bytes] = []
    for number in range(count):
        roll = rng.random()
        if earlier and roll < 0.002:
            yield rng.choice(earlier)  # a duplicate: the same event delivered again
            continue
        if earlier and roll < 0.0025:
            event = orjson.loads(rng.choice(earlier))
            event["data"]["resent"] = True  # the same key with other content: a conflict
            yield orjson.dumps(event)
            continue
        line = _event(rng)
        if number % 500 == 0:
            earlier.append(line)
        yield line


def _event(rng: random.Random) -> bytes:
    if 0.002 <= rng.random() < 0.0025:
        tenant = f"org-9{rng.randrange(UNBILLED):03d}"
    else:
        tenant = _tenant(int(CUSTOMERS * rng.random() ** 2))  # a few large tenants, a long tail
    cluster = f"lkc-{tenant[4:]}{'abc'[rng.randrange(3)]}"
    kind = rng.random()
    data: dict[str, Any]
    if kind < 0.4:
        event_type, data = "kafka.ingress", {"bytes": rng.randrange(1, 10_000_000), "cluster": cluster}
    elif kind < 0.6:
        event_type, data = "kafka.egress", {"bytes": rng.randrange(1, 10_000_000), "cluster": cluster}
    elif kind < 0.7:
        event_type, data = "kafka.partitions", {"partitions": rng.randrange(1, 600), "cluster": cluster}
    elif kind < 0.9:
        event_type = "api.request"
        data = {"user": f"u-{rng.randrange(50)}", "endpoint": _ENDPOINTS[rng.randrange(4)]}
    else:
        event_type = "storage.snapshot"
        gb: float = rng.randrange(1, 5_000)
        if rng.random() < 0.1:  # a JSON number with a fraction: the exact re-parse path
            gb += rng.choice((0.25, 0.5, 0.125, 0.75))  # binary fractions: orjson writes them as is
        data = {"gb": gb, "cluster": cluster}
    if rng.random() < 0.0002:
        data = {**data, "bytes": -1, "partitions": -1, "gb": -1}  # invalid_value for the sum meters
    month, day = (10, rng.randrange(1, 32)) if rng.random() < 0.005 else (11, rng.randrange(1, 31))
    stamp = (
        f"2026-{month:02d}-{day:02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:"
        f"{rng.randrange(60):02d}.{rng.randrange(1000):03d}"
    )
    stamp += "+01:00" if rng.random() < 0.01 else "Z"
    event = {
        "specversion": "1.0",
        "id": f"{rng.getrandbits(128):032x}",
        "source": f"{cluster}/us-east-1",
        "type": event_type,
        "subject": tenant,
        "time": stamp,
        "data": data,
    }
    return orjson.dumps(event)


# --- the two timed paths, each run in a fresh process ---------------------------------------


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float
    """The process's CPU time over the same span: far below ``seconds`` when other work shares the CPU."""
    rating_seconds: float
    input_rss_mb: float
    """Peak RSS before the clock starts: the interpreter, the catalog and the input lines."""
    peak_rss_mb: float
    check: dict[str, Any]
    """What the path computed, to show it did the work: the summary, or the baseline's totals."""


def run_baseline(path: str) -> Run:
    lines = _read_lines(path)
    input_rss = _peak_rss_mb()
    start, cpu_start = time.perf_counter(), time.process_time()
    totals: dict[tuple[str, str, str], int] = {}
    loads = orjson.loads
    for line in lines:
        event = loads(line)
        key = (event["subject"], event["type"], event["time"][:13])
        totals[key] = totals.get(key, 0) + event["data"].get("bytes", 1)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return Run(seconds, cpu_seconds, 0.0, input_rss, _peak_rss_mb(), {"groups": len(totals)})


def run_meterline(path: str) -> Run:
    catalog = bench_catalog()
    lines = _read_lines(path)
    input_rss = _peak_rss_mb()
    start, cpu_start = time.perf_counter(), time.process_time()
    metered = meter_lines(catalog, lines, PERIOD)
    rating_start = time.perf_counter()
    (result,) = rate_book(catalog, metered, PERIOD, PERIOD)
    with collector_paused():  # as `meterline rate` writes its JSON
        invoices = [invoice.to_json() for invoice in result.invoices]
    end, cpu_end = time.perf_counter(), time.process_time()
    check = {
        "summary": result.summary.to_json(),
        "invoices": len(invoices),
        "unbilled": len(result.unbilled_tenants),
    }
    return Run(end - start, cpu_end - cpu_start, end - rating_start, input_rss, _peak_rss_mb(), check)


def _read_lines(path: str) -> list[bytes]:
    with open(path, "rb") as stream:
        return stream.readlines()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def in_fresh_process(job: Callable[..., _Result], *args: Any) -> _Result:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(job, *args).result()


# --- the report -----------------------------------------------------------------------------


def bench(events: int, rounds: int = ROUNDS) -> dict[str, Any]:
    """The figures of the round whose ratio is the median of ``rounds``: in each round the two paths
    run one after the other, so a host that speeds up or slows down between rounds moves both."""
    with tempfile.TemporaryDirectory(prefix="meterline-bench-") as folder:
        path = os.path.join(folder, "usage.ndjson")
        # Each step in its own fresh process: a child's peak RSS starts from its parent's RSS at the
        # fork (Linux keeps it across exec), so this process never holds the events itself.
        in_fresh_process(write_events, path, events)
        runs = []
        for _ in range(rounds):
            runs.append((in_fresh_process(run_baseline, path), in_fresh_process(run_meterline, path)))
    ratios = [baseline.seconds / exact.seconds for baseline, exact in runs]
    baseline, exact = runs[sorted(range(rounds), key=ratios.__getitem__)[rounds // 2]]
    baseline_rate = events / baseline.seconds
    exact_rate = events / exact.seconds
    return {
        "events": events,
        "baseline": {"events_per_second": round(baseline_rate), **_figures(baseline)},
        "meterline": {
            "events_per_second": round(exact_rate),
            **_figures(exact),
            "metering_seconds": round(exact.seconds - exact.rating_seconds, 3),
            "rating_seconds": round(exact.rating_seconds, 3),
        },
        "ratio": round(exact_rate / baseline_rate, 3),
        "round_ratios": [round(ratio, 3) for ratio in ratios],
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def write_events(path: str, events: int) -> None:
    with open(path, "wb") as out:
        out.writelines(line + b"\n" for line in generate_events(events))


def _figures(run: Run) -> dict[str, Any]:
    return {
        "seconds": round(run.seconds, 3),
        "cpu_seconds": round(run.cpu_seconds, 3),
        "peak_rss_mb": round(run.peak_rss_mb, 1),
        "input_rss_mb": round(run.input_rss_mb, 1),
        "check": run.check,
    }


def format_report(report: dict[str, Any]) -> str:
    baseline, exact = report["baseline"], report["meterline"]
    summary = exact["check"]["summary"]
    return "\n".join(
        [
            f"meterline bench: {report['events']:,} events, period {PERIOD}",
            f"  (a) baseline  orjson + dict sum      {baseline['events_per_second']:>10,} events/s"
            f"  {baseline['seconds']:>7.2f} s  peak RSS {baseline['peak_rss_mb']:>7.1f} MB",
            f"  (b) meterline rate_lines (exact)     {exact['events_per_second']:>10,} events/s"
            f"  {exact['seconds']:>7.2f} s  peak RSS {exact['peak_rss_mb']:>7.1f} MB",
            f"      ratio (b)/(a)                    {report['ratio']:>10.3f}"
            f"  (on CPU time: {baseline['cpu_seconds'] / exact['cpu_seconds']:.3f})",
            f"      the median of {len(report['round_ratios'])} rounds' ratios:"
            f" {', '.join(f'{ratio:.3f}' for ratio in report['round_ratios'])}",
            f"      metering {exact['metering_seconds']:.2f} s; rating and assembling "
            f"{exact['check']['invoices']:,} invoices {exact['rating_seconds']:.3f} s",
            f"      before the clock (interpreter, catalog, input lines): {exact['input_rss_mb']:.1f} MB RSS",
            f"      accepted {summary['accepted']:,}, duplicates {summary['duplicates']:,}, "
            f"rejected {summary['rejected']:,}, out of period {summary['out_of_period']:,}",
        ]
    )


# --- the command ---------------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    command = commands.add_parser(
        "bench", help="events per second of the exact rating path against orjson and a dict sum"
    )
    command.add_argument(
        "--events",
        type=_event_count,
        help="synthetic events (default 1,000,000; with --pipeline 20,000 on moto, 200,000 in memory)",
    )
    command.add_argument(
        "--rounds", type=_rounds, default=ROUNDS, help=f"rounds of both paths (default {ROUNDS})"
    )
    command.add_argument("--json", action="store_true", help="print the figures as JSON")
    command.add_argument(
        "--pipeline",
        action="store_true",
        help="write units per event on DynamoDB (moto) and CPU time per event of the pipeline's jobs",
    )
    command.add_argument(
        "--tenants", type=_event_count, default=CUSTOMERS, help="with --pipeline (default 1,000)"
    )
    command.add_argument("--batch", type=_event_count, default=500, help="with --pipeline: MSK batch size")
    command.add_argument(
        "--catalog",
        action="store_true",
        help="CPU and memory of loading a catalog at the size limit: a realistic one and hostile shapes",
    )
    command.add_argument(
        "--samples",
        type=_event_count,
        help="with --pipeline: per-second samples of one tenant's gauge through aggregate and rate"
        " (default 1,000,000)",
    )
    command.add_argument(
        "--cold-import",
        action="store_true",
        help="only the cold import of each AWS handler against a bare `import boto3` (also printed by"
        " the default run)",
    )
    command.add_argument(
        "--write-measured",
        type=Path,
        metavar="FILE",
        help="with --pipeline: write infra/cost's measured.json with the measured figures replaced",
    )
    command.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    if args.catalog:
        from meterline.bench_catalog import run_catalog_bench

        return run_catalog_bench(args)
    if args.pipeline:
        from meterline.bench_pipeline import run_pipeline_bench

        return run_pipeline_bench(args)
    from meterline.bench_coldstart import ColdImportError, cold_imports, format_cold_imports

    report: dict[str, Any] = {}
    if not args.cold_import:
        if args.events is None:
            args.events = 1_000_000
        print(f"meterline bench: generating {args.events:,} events, then timing both paths…", file=sys.stderr)
        report = bench(args.events, args.rounds)
    print("meterline bench: timing each AWS handler's cold import…", file=sys.stderr)
    try:
        report["cold_import"] = cold_imports()
    except ColdImportError as error:
        print(f"meterline bench: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        sections = [] if args.cold_import else [format_report(report)]
        print("\n\n".join([*sections, format_cold_imports(report["cold_import"])]))
    return 0


MAX_COUNT = 10_000_000
"""The most events (or tenants, or samples) a bench holds in memory: a few GB."""


def _event_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of events")
    if count > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text!r} is more than the {MAX_COUNT:,} a bench holds in memory")
    return count


MAX_ROUNDS = 25


def _rounds(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_ROUNDS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of rounds from 1 to {MAX_ROUNDS}")
    return int(text)
