"""`meterline bench --pipeline` on a tiny run: write units on moto and CPU time in memory.

No timing is asserted: only that every figure is there, positive where it must be, consistent
with the write units the DynamoDB adapter itself counted, and in the format infra/cost reads.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from infra.cost.measured import MEASURED_JSON, load_figures
from meterline.bench_pipeline import (
    STAGES,
    bench_pipeline,
    cost_figures,
    format_pipeline_report,
    measured_json,
)
from meterline.bench_timeweighted import measure_time_weighted
from meterline.catalog import sample_catalog
from meterline.cli import main
from meterline.pipeline import ledger
from meterline.topology import AGGREGATE

EVENTS = 600
SAMPLES = 3_000
TENANTS = 12
TODAY = date(2026, 11, 28)
MEASURED = (
    "dynamodb.usage.write_units",
    "dynamodb.aggregates.write_units",
    "dynamodb.charges.write_units",
    "dynamodb.outcomes.write_units",
    "dynamodb.invoices.write_units",
    "dynamodb.usage.stored_bytes",
    "lambda.meter.gb_seconds",
    "lambda.aggregate.gb_seconds",
    "lambda.rate.gb_seconds",
    "lambda.meter.requests",
    "lambda.aggregate.requests",
    "lambda.rate.requests",
)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    # One run for the module: the sample catalog keeps the close stage to its few customers.
    return bench_pipeline(
        EVENTS, TENANTS, batch=100, speed_events=EVENTS, catalog=sample_catalog(), samples=SAMPLES
    )


def test_every_accepted_event_costs_at_least_its_conditional_put(report: dict[str, Any]) -> None:
    # GIVEN a run of 600 events through meter, aggregate, rate and close on moto (the fixture)
    units = report["units"]
    per_event = units["wru_per_accepted_event"]
    # THEN each stage wrote something, and metering alone costs ≥ 1 unit per accepted event
    assert units["accepted"] > 0
    assert all(units["write_units"][stage] > 0 for stage in STAGES)
    assert per_event["meter"] >= 1
    assert per_event["total"] >= per_event["streaming"] >= per_event["meter"]
    assert units["accepted"] + units["duplicates"] + units["rejected"] == EVENTS


def test_the_split_by_table_adds_up_to_what_the_adapter_counted(report: dict[str, Any]) -> None:
    units = report["units"]
    assert units["write_units_check"] is True
    assert sum(units["write_units_by_table"].values()) == sum(units["write_units"].values())


def test_the_naive_design_writes_once_per_event_and_meter(report: dict[str, Any]) -> None:
    naive = report["units"]["naive"]
    assert naive["measurements_per_accepted_event"] >= 1
    assert naive["wru_per_accepted_event"] > report["units"]["wru_per_accepted_event"]["meter"]


def test_cpu_time_is_reported_for_each_job_and_the_handler(report: dict[str, Any]) -> None:
    speed = report["speed"]
    assert speed["handler_failures"] == 0  # the handler metered every record, not failed them fast
    for job in ("meter", "aggregate", "rate", "cell", "meter_handler"):
        assert speed["events_per_cpu_second"][job] > 0
        assert Decimal(speed["gb_seconds_per_million_events"][job]) > 0


def test_compaction_reports_rate_calls_by_quarter_and_what_rollups_write(report: dict[str, Any]) -> None:
    compaction = report["compaction"]
    # THEN every partial was rated once, the quarters cover the period, and reads were counted
    assert compaction["events"] == EVENTS and compaction["partials"] >= 2
    assert len(compaction["rate_cpu_ms_per_call_by_quarter"]) == 4
    assert compaction["max_items_read_per_call"] > 0
    assert compaction["aggregates_wru_by_kind"]["partial"] > 0


def test_the_gauge_run_reports_cpu_per_sample_of_its_first_and_last_tenth(report: dict[str, Any]) -> None:
    # GIVEN 3,000 per-second samples of one tenant's gauge through aggregate and rate, three times
    # (the fixture)
    gauge = report["time_weighted"]
    # THEN it reports the CPU per sample of the first and the last 300 samples, and their ratio
    assert gauge["samples"] == SAMPLES and gauge["aggregate_batch"] == AGGREGATE.batch_size
    first, last = Decimal(gauge["first_cpu_us_per_sample"]), Decimal(gauge["last_cpu_us_per_sample"])
    assert first > 0 and last > 0
    assert Decimal(gauge["last_to_first"]) == (last / first).quantize(Decimal("0.01"))
    # AND it is the run of median ratio of three, each in a process of its own
    ratios = [Decimal(ratio) for ratio in gauge["runs_last_to_first"]]
    assert len(ratios) == 3 and sorted(ratios)[1] == Decimal(gauge["last_to_first"])
    # AND the printed report carries the figure with its target
    printed = format_pipeline_report(report)
    assert f"{SAMPLES:,} per-second samples" in printed and "target ≤ 1.5" in printed


def test_a_gauge_arriving_in_order_never_reads_archived_samples_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN windows sealed after every 2 partials, so that the gauge's hours are rolled up and archived
    monkeypatch.setattr(ledger, "SEAL_AFTER_PARTIALS", 2)
    archived: list[int] = []
    real_write_archive = ledger.PeriodLedger.write_archive

    def write_archive(self: ledger.PeriodLedger, bucket: int, window: int, base: int, book: Any) -> None:
        archived.append(window)
        real_write_archive(self, bucket, window, base, book)

    monkeypatch.setattr(ledger.PeriodLedger, "write_archive", write_archive)
    # WHEN 6,000 per-second samples go through aggregate and rate
    gauge = measure_time_weighted(6_000)
    # THEN rollups archived them, and no sample arriving after them needed an archived hour read back
    assert len(archived) >= 2
    assert gauge["archive_reads"] == 0


def test_figures_are_in_the_cost_models_format_and_positive(report: dict[str, Any], tmp_path: Path) -> None:
    # GIVEN the committed measured.json and the run's figures laid over it
    committed = json.loads(MEASURED_JSON.read_text())
    written = measured_json(report, committed, TODAY)
    path = tmp_path / "measured.json"
    path.write_text(json.dumps(written, default=str))
    # WHEN infra/cost reads the file back
    figures = load_figures(path)
    # THEN every measured figure is there, positive, and names the command and date it came from
    for name in MEASURED:
        figure = figures.get(name)
        assert figure is not None, name
        assert figure.value > 0, name
        assert figure.source == "meterline bench --pipeline --json, 2026-11-28"
    # AND a figure the bench cannot measure keeps its committed entry unchanged
    assert "kms.requests" not in cost_figures(report, TODAY)
    assert written["figures"]["kms.requests"] == committed["figures"]["kms.requests"]
    assert len(figures) == len(committed["figures"])


def test_too_few_events_for_the_tenants_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--pipeline", "--events", "10", "--tenants", "1000"])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("meterline bench: --events 10 is too few for 1000 tenants")
