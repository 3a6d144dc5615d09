"""`meterline bench` on a small run: both paths run, and the figures it reports hang together.

No timing is asserted: only that the figures exist, are consistent with each other, and come
from the real `rate_lines` path over the generated events.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from meterline.bench import PERIOD, bench, bench_catalog, format_report, generate_events
from meterline.cli import main
from meterline.offline import rate_lines

EVENTS = 2_000


def run(argv: list[str]) -> int:
    """main() as the console script runs it: argparse's own errors leave by SystemExit."""
    try:
        return main(argv)
    except SystemExit as leaving:
        return int(leaving.code or 0)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    # One run for the module: seven fresh processes (generate, then three rounds of baseline and meterline).
    return bench(EVENTS)


def test_bench_times_the_baseline_and_the_exact_path_on_every_event(report: dict[str, Any]) -> None:
    # GIVEN a bench run on 2,000 events (the fixture)
    baseline, exact = report["baseline"], report["meterline"]
    # THEN both paths report a rate and a peak RSS, and the ratio is the one of their rates
    assert report["events"] == EVENTS
    assert baseline["events_per_second"] > 0 and exact["events_per_second"] > 0
    assert report["ratio"] == pytest.approx(
        exact["events_per_second"] / baseline["events_per_second"], abs=6e-4
    )
    assert exact["peak_rss_mb"] >= exact["input_rss_mb"] > 0
    # AND those are the figures of the median round of three
    assert len(report["round_ratios"]) == 3
    assert sorted(report["round_ratios"])[1] == pytest.approx(report["ratio"], abs=6e-4)
    # AND rating is timed as a part of the exact path, not beside it
    assert 0 < exact["rating_seconds"] <= exact["seconds"]
    assert exact["metering_seconds"] == pytest.approx(exact["seconds"] - exact["rating_seconds"], abs=0.002)


def test_bench_counts_are_those_of_rate_lines_on_the_same_events(report: dict[str, Any]) -> None:
    # GIVEN the same generated events rated here by rate_lines itself
    result = rate_lines(bench_catalog(), generate_events(EVENTS), PERIOD)
    exact = report["meterline"]
    # THEN the bench measured that very path: same summary, every customer invoiced
    assert exact["check"]["summary"] == result.summary.to_json()
    assert exact["check"]["invoices"] == len(result.invoices) == 1_000
    summary = result.summary
    assert summary.received == EVENTS
    assert summary.accepted + summary.duplicates + summary.rejected + summary.out_of_period == EVENTS


def test_generated_events_hold_fractional_numbers_duplicates_and_late_usage() -> None:
    # GIVEN the bench's synthetic events, enough of them for the rare cases to appear
    lines = list(generate_events(20_000))
    # THEN some carry a JSON number with a fraction (the exact re-parse path) ...
    assert any(isinstance(orjson.loads(line)["data"].get("gb"), float) for line in lines)
    # ... and the rated summary shows duplicates, conflicts and late events among them
    summary = rate_lines(bench_catalog(), lines, PERIOD).summary
    assert summary.duplicates > 0
    assert summary.rejected_by_reason["conflict"] > 0
    assert summary.out_of_period > 0


def test_bench_refuses_a_count_that_is_not_positive(capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN the event count is zero
    status = run(["bench", "--events", "0"])
    # THEN it stops with a one-line error naming the argument
    assert status == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert errors == ["meterline bench: error: argument --events: '0' is not a positive number of events"]


@pytest.mark.parametrize("rounds", ["0", "26", "three", "-1"])
def test_bench_refuses_rounds_out_of_range(rounds: str, capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN the rounds are not a whole number from 1 to 25
    status = run(["bench", "--events", "300", "--rounds", rounds])
    # THEN it stops with a one-line error naming the argument, before any run
    assert status == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert errors == [
        f"meterline bench: error: argument --rounds: {rounds!r} is not a number of rounds from 1 to 25"
    ]


def test_the_text_report_names_each_figure(report: dict[str, Any]) -> None:
    # WHEN the figures are printed for a person
    text = format_report(report)
    # THEN each path's rate and peak RSS, the ratio and the rating time are there
    assert f"{report['baseline']['events_per_second']:,} events/s" in text
    assert f"{report['meterline']['events_per_second']:,} events/s" in text
    assert f"{report['ratio']:.3f}" in text
    assert all(f"{ratio:.3f}" in text for ratio in report["round_ratios"])
    assert "peak RSS" in text and "1,000 invoices" in text


def test_bench_json_is_the_command_output(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    # WHEN meterline bench runs with --json on a few events
    status = run(["bench", "--events", "300", "--json"])
    # THEN stdout is one JSON document with both paths' figures
    assert status == 0
    printed = json.loads(capsysbinary.readouterr().out)
    assert printed["events"] == 300
    assert {"baseline", "meterline", "ratio"} <= printed.keys()
    assert printed["meterline"]["check"]["summary"]["received"] == 300
