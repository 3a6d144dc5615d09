"""`meterline bench --catalog`: what loading a catalog costs, for a realistic one and for the shapes
an attacker would pick, each at the size limit and at half of it, each in a fresh process (the
least CPU time of three loads).

The baseline is the sample catalog grown to the limit with customers, loaded by ``parse_catalog``;
every other case is set beside it as a ratio of CPU seconds. ``at half`` is the same shape at half
the size: a loader linear in its input takes half the time there (a ratio full/half near 2). The
baseline is also loaded on PyYAML's own parser, as where PyYAML was built without libyaml (and as
before the loader read libyaml's events).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from importlib import resources
from typing import Any

import orjson
import yaml

from meterline.bench import in_fresh_process
from meterline.catalog import MAX_CATALOG_BYTES, CatalogError, parse_catalog

_HEAD = "meters:\n  - {key: m, event_type: t, aggregation: count}\nplans:\n"


def _sample_with_customers(size: int) -> str:
    sample = resources.files("meterline").joinpath("samples", "catalog.yaml").read_text(encoding="utf-8")
    head = sample.partition("\ncustomers:")[0] + "\ncustomers:\n"
    one = '  - tenant: org-{:06d}\n    plan: standard\n    credits: "10.00"\n'
    count = (size - len(head)) // len(one.format(0))
    return head + "".join(one.format(number) for number in range(count))


def _flow_numbers(size: int) -> str:
    return "meters: [" + "0," * (size // 2 - 6) + "0]"


def _repeated_keys(size: int) -> str:
    return "{" + "a," * (size // 2 - 1) + "}"


def _small_mappings(size: int) -> str:
    return "meters: [" + "{a: 0}," * (size // 7 - 2) + "{}]"


def _plan_versions(size: int) -> str:
    one = (
        '  - {{key: p, version: {}, effective_from: "{}", currency: USD,'
        ' charges: [{{meter: m, model: per_unit, unit_price: "1"}}]}}\n'
    )
    count = (size - len(_HEAD) - 20) // len(one.format(99999, date(2000, 1, 1)))
    versions = "".join(one.format(n + 1, date(2000, 1, 1) + timedelta(n)) for n in range(count))
    return _HEAD + versions + "customers: []\n"


def _alias_bomb(size: int) -> str:
    levels = ['l0: &l0 "lol"'] + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 13)]
    return "\n".join(levels) + "\n"


def _deep(size: int) -> str:
    return "meters: " + "[" * (size // 2 - 8) + "]" * (size // 2 - 8)


def _oversize(size: int) -> str:
    return "#" * (80 * 2**20)  # 80 MiB, whatever the size asked


SHAPES: dict[str, tuple[str, Callable[[int], str]]] = {
    "sample": ("the sample catalog grown with customers (baseline)", _sample_with_customers),
    "numbers": ("meters: [0,0,0,…] (a node per 2 bytes)", _flow_numbers),
    "keys": ("{a,a,a,…} (a key per 2 bytes)", _repeated_keys),
    "mappings": ("meters: [{a: 0},…] (small mappings)", _small_mappings),
    "versions": ("one plan in thousands of versions", _plan_versions),
    "alias bomb": ("12 levels of 10 aliases (10^12 once expanded)", _alias_bomb),
    "deep": ("[[[[…]]]] nested half a MiB deep", _deep),
    "oversize": ("80 MiB of text", _oversize),
}


@dataclass(frozen=True)
class Load:
    shape: str
    bytes: int
    cpu_seconds: float
    peak_rss_growth_mb: float
    outcome: str


def load(shape: str, size: int, without_libyaml: bool = False, repeats: int = 3) -> Load:
    """Loads in this (fresh) process, the text built before the clock starts: the least CPU time of
    ``repeats`` (the others are the machine's noise), and the peak memory of any."""
    text = SHAPES[shape][1](size)
    length = len(text.encode("utf-8"))
    libyaml = getattr(yaml, "CSafeLoader", None)
    if without_libyaml and libyaml is not None:
        del yaml.CSafeLoader  # the catalog's loader falls back to PyYAML's own parser
    before = _peak_rss_mb()
    seconds = []
    try:
        for _ in range(repeats):
            start = time.process_time()
            try:
                outcome = f"loaded: {len(parse_catalog(text).customers):,} customers"  # and let go of it
            except CatalogError as error:
                outcome = f"refused: {str(error)[:90]}"
            seconds.append(time.process_time() - start)
    finally:
        if libyaml is not None:
            setattr(yaml, "CSafeLoader", libyaml)  # noqa: B010 - mypy will not let a type be assigned
    return Load(shape, length, min(seconds), _peak_rss_mb() - before, outcome)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def bench_catalog() -> dict[str, Any]:
    full, half = MAX_CATALOG_BYTES, MAX_CATALOG_BYTES // 2
    loads = {shape: in_fresh_process(load, shape, full) for shape in SHAPES}
    halves = {
        shape: in_fresh_process(load, shape, half) for shape in ("sample", "numbers", "keys", "versions")
    }
    pyyaml = in_fresh_process(load, "sample", full, True)
    baseline = loads["sample"].cpu_seconds
    return {
        "limit_bytes": MAX_CATALOG_BYTES,
        "loads": {
            shape: {
                **asdict(result),
                "what": SHAPES[shape][0],
                "ratio_to_baseline": round(result.cpu_seconds / baseline, 3),
                **(
                    {"full_over_half": round(result.cpu_seconds / halves[shape].cpu_seconds, 2)}
                    if shape in halves
                    else {}
                ),
            }
            for shape, result in loads.items()
        },
        "pyyaml_parser_over_libyaml": round(pyyaml.cpu_seconds / baseline, 2),
        "python": sys.version.split()[0],
        "libyaml": bool(getattr(yaml, "__with_libyaml__", False)),
    }


def format_catalog_report(report: dict[str, Any]) -> str:
    lines = [
        f"meterline bench --catalog: loading {report['limit_bytes']:,} bytes (the limit) of each shape,"
        " in a fresh process; CPU seconds, peak RSS growth, ratio to the baseline; full/half: the same"
        " shape at half the size (2.0 = linear)"
    ]
    for shape, load_ in report["loads"].items():
        scaling = f"  full/half {load_['full_over_half']:.2f}" if "full_over_half" in load_ else ""
        lines.append(
            f"  {shape:<11} {load_['cpu_seconds']:>7.3f} s  {load_['peak_rss_growth_mb']:>6.1f} MB"
            f"  ×{load_['ratio_to_baseline']:<7.3f}{scaling}  {load_['what']}"
        )
        lines.append(f"  {'':<11} {load_['outcome']}")
    ratio = report["pyyaml_parser_over_libyaml"]
    lines.append(f"  the baseline on PyYAML's own parser instead of libyaml's: ×{ratio}")
    return "\n".join(lines)


def run_catalog_bench(args: argparse.Namespace) -> int:
    print("meterline bench --catalog: loading each shape in a fresh process…", file=sys.stderr)
    report = bench_catalog()
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(format_catalog_report(report))
    return 0
