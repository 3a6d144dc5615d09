"""`meterline generate`: a realistic, reproducible month of events whose faults rating finds exactly."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from meterline.catalog import Catalog, parse_catalog, sample_catalog
from meterline.cli import main
from meterline.generate import FaultRates, GenerateError, GenerateSpec, generate, line_counts
from meterline.markets import DIMENSIONS
from meterline.offline import rate_lines
from meterline.periods import Period

NOVEMBER = Period(2026, 11)
NO_FAULTS = FaultRates(Decimal(0), Decimal(0), Decimal(0), Decimal(0))
HOURS_IN_NOVEMBER = 30 * 24


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return sample_catalog()


@pytest.fixture(scope="module")
def month(catalog: Catalog) -> list[bytes]:
    """A month for 20 tenants with the default faults (20k lines)."""
    return list(generate(catalog, GenerateSpec(NOVEMBER, tenants=20, seed=11, events=20_000)))


def documents(lines: list[bytes]) -> list[Any]:
    parsed = []
    for line in lines:
        try:
            parsed.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            parsed.append(None)
    return parsed


def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(catalog: Catalog) -> None:
    # GIVEN one spec, and the same spec with another seed
    spec = GenerateSpec(NOVEMBER, tenants=6, seed=3, events=8_000)
    other = GenerateSpec(NOVEMBER, tenants=6, seed=4, events=8_000)

    # WHEN each is generated (twice for the first)
    first, second = b"".join(generate(catalog, spec)), b"".join(generate(catalog, spec))

    # THEN the first two are byte-identical and the third differs
    assert first == second
    assert first != b"".join(generate(catalog, other))


def test_it_writes_exactly_the_lines_asked_for_one_event_per_line(month: list[bytes]) -> None:
    assert len(month) == 20_000
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in month)


def test_rating_the_month_finds_exactly_the_faults_that_were_injected(
    catalog: Catalog, month: list[bytes]
) -> None:
    # GIVEN the counts the spec promises
    expected = line_counts(GenerateSpec(NOVEMBER, tenants=20, seed=11, events=20_000)).by_outcome()

    # WHEN the month is rated
    summary = rate_lines(catalog, month, NOVEMBER).summary

    # THEN every injected fault is found as what it is, and everything reconciles
    assert expected["duplicates"] > 0 and expected["conflict"] > 0 and expected["out_of_period"] > 0
    assert summary.received == expected["received"] == 20_000
    assert summary.accepted == expected["accepted"]
    assert summary.duplicates == expected["duplicates"]
    assert summary.rejected_by_reason["conflict"] == expected["conflict"]
    assert summary.rejected == expected["rejected"]
    assert summary.out_of_period == expected["out_of_period"]


def test_malformed_lines_come_in_several_kinds(catalog: Catalog) -> None:
    # GIVEN a month where a fifth of the lines are malformed
    faults = FaultRates(Decimal(0), Decimal(0), Decimal(0), Decimal("0.2"))
    lines = generate(catalog, GenerateSpec(NOVEMBER, tenants=3, seed=5, events=12_000, faults=faults))

    # WHEN it is rated
    reasons = rate_lines(catalog, lines, NOVEMBER).summary.rejected_by_reason

    # THEN each kind of rejection but conflict occurs, and they add up to the malformed share
    assert all(
        reasons[reason] > 0 for reason in ("malformed", "invalid_envelope", "unknown_type", "invalid_value")
    )
    assert sum(reasons.values()) == 2_400


def test_without_faults_every_line_is_accepted_usage(catalog: Catalog) -> None:
    lines = generate(catalog, GenerateSpec(NOVEMBER, tenants=4, seed=2, events=10_000, faults=NO_FAULTS))
    summary = rate_lines(catalog, lines, NOVEMBER).summary
    assert (summary.accepted, summary.received) == (10_000, 10_000)


def test_duplicates_repeat_an_earlier_line_byte_for_byte_and_conflicts_reuse_a_key(
    month: list[bytes],
) -> None:
    # GIVEN the month's lines and their parsed events
    first_seen: dict[tuple[str, str, str], bytes] = {}
    duplicates = conflicts = 0

    # WHEN each line's dedup key is compared with the first line that had it
    for line, document in zip(month, documents(month), strict=True):
        if not isinstance(document, dict) or not all(k in document for k in ("subject", "source", "id")):
            continue
        key = (document["subject"], document["source"], document["id"])
        if key not in first_seen:
            first_seen[key] = line
        elif first_seen[key] == line:
            duplicates += 1
        else:
            conflicts += 1

    # THEN duplicates are identical bytes and conflicts have other content, as many as asked
    assert duplicates == 200
    assert conflicts == 100


def test_late_events_are_timed_in_the_previous_month_and_come_last(month: list[bytes]) -> None:
    # GIVEN each line's month
    months = [
        document["time"][:7] if isinstance(document, dict) and isinstance(document.get("time"), str) else None
        for document in documents(month)
    ]

    # THEN the last 200 lines (1 %) are October's, and no October event comes earlier
    assert set(months[-200:]) == {"2026-10"}
    assert "2026-10" not in months[:-200]


def test_tenants_are_the_catalogs_customers_first_then_tenants_without_a_contract(
    catalog: Catalog, month: list[bytes]
) -> None:
    # GIVEN the month rated
    result = rate_lines(catalog, month, NOVEMBER)
    subjects = {doc["subject"] for doc in documents(month) if isinstance(doc, dict) and "subject" in doc}

    # THEN all 17 customers send usage, and the 3 extra tenants are unbilled
    assert set(catalog.customers) <= subjects
    extras = subjects - set(catalog.customers)
    assert len(extras) == 3
    assert extras <= set(result.unbilled_tenants)


def test_gauges_are_read_every_hour_for_each_series(catalog: Catalog) -> None:
    # GIVEN a month with room for hourly gauges
    lines = list(
        generate(catalog, GenerateSpec(NOVEMBER, tenants=2, seed=9, events=20_000, faults=NO_FAULTS))
    )

    # WHEN the cluster status readings are grouped by tenant and cluster
    readings: dict[tuple[str, str], set[str]] = {}
    for document in documents(lines):
        if document["type"] == "kafka.cluster.status":
            readings.setdefault((document["subject"], document["data"]["cluster"]), set()).add(
                document["time"]
            )

    # THEN every series has a reading on each hour of November
    hours = {
        (datetime(2026, 11, 1) + timedelta(hours=h)).strftime("%Y-%m-%dT%H:00:00Z")
        for h in range(HOURS_IN_NOVEMBER)
    }
    assert readings
    assert all(times == hours for times in readings.values())


def test_events_carry_what_the_catalogs_meters_read_and_numbers_are_never_floats(month: list[bytes]) -> None:
    catalog = sample_catalog()
    for document in documents(month[:5_000]):
        if not isinstance(document, dict) or document.get("type") not in catalog.meters_by_type:
            continue
        for meter in catalog.meters_by_type[document["type"]]:
            # $cloud and $region are the cell's to fill in, not the event's
            assert set(meter.group_by) - set(DIMENSIONS) <= document["data"].keys()
    assert not any(_holds_float(document) for document in documents(month))


def _holds_float(node: Any) -> bool:
    if isinstance(node, float):
        return True
    if isinstance(node, dict):
        return any(_holds_float(value) for value in node.values())
    if isinstance(node, list):
        return any(_holds_float(value) for value in node)
    return False


GAUGES_ONLY = """
meters:
  - {key: replicas, event_type: db.status, aggregation: time_weighted, value: spec.replicas, group_by: [db]}
plans:
  - key: p
    effective_from: 2026-01-01
    currency: EUR
    charges: [{meter: replicas, model: per_unit, unit_price: "0.01"}]
customers:
  - {tenant: org-1, plan: p}
"""


def test_any_catalog_works_even_one_with_only_gauges_and_nested_values() -> None:
    # GIVEN a catalog whose only meter is a gauge read from a nested key
    catalog = parse_catalog(GAUGES_ONLY)

    # WHEN a month is generated with an odd number of events
    lines = list(generate(catalog, GenerateSpec(NOVEMBER, tenants=3, seed=1, events=1_001, faults=NO_FAULTS)))

    # THEN it holds exactly that many valid events, each with the nested value
    assert len(lines) == 1_001
    summary = rate_lines(catalog, lines, NOVEMBER).summary
    assert summary.accepted == 1_001
    assert all(isinstance(orjson.loads(line)["data"]["spec"]["replicas"], int) for line in lines)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (GenerateSpec(NOVEMBER, tenants=0, seed=1, events=10), "--tenants must be at least 1"),
        (GenerateSpec(NOVEMBER, tenants=1, seed=1, events=0), "--events must be at least 1"),
        (GenerateSpec(NOVEMBER, tenants=20, seed=1, events=50), "--events 50 is too few for 20 tenants"),
        (
            GenerateSpec(
                NOVEMBER, tenants=1, seed=1, events=100, faults=FaultRates(Decimal("0.6"), Decimal("0.5"))
            ),
            "leave no room for usage events",
        ),
    ],
)
def test_impossible_arguments_are_refused_with_a_reason(
    catalog: Catalog, spec: GenerateSpec, message: str
) -> None:
    with pytest.raises(GenerateError, match=message):
        list(generate(catalog, spec))


def test_the_command_writes_a_file_that_meterline_rate_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an output path
    out = tmp_path / "usage.ndjson"

    # WHEN meterline generates into it and then rates it
    generated = main(
        [
            "generate",
            "--tenants",
            "3",
            "--period",
            "2026-11",
            "--seed",
            "7",
            "--events",
            "5000",
            "--duplicate-rate",
            "0.02",
            "--out",
            str(out),
        ]
    )
    rated = main(
        [
            "rate",
            "--catalog",
            "shared/meterline/samples/catalog.yaml",
            "--usage",
            str(out),
            "--period",
            "2026-11",
        ]
    )

    # THEN both succeed and the summary counts every line
    assert (generated, rated) == (0, 0)
    assert out.read_bytes().count(b"\n") == 5_000
    summary = orjson.loads(capsys.readouterr().out)["summary"]
    assert summary["received"] == 5_000
    assert summary["duplicates"] == 100


def test_the_command_writes_to_standard_output_by_default(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["generate", "--tenants", "2", "--period", "2026-02", "--events", "2000"]) == 0
    out = capsysbinary.readouterr().out
    assert out.count(b"\n") == 2_000
    events = [document for document in documents(out.splitlines()) if isinstance(document, dict)]
    months = Counter(document["time"][:7] for document in events if isinstance(document.get("time"), str))
    assert months.most_common(1)[0][0] == "2026-02"


def exit_status(arguments: list[str]) -> int:
    """main's status, also when argparse refuses a value itself (it exits)."""
    try:
        return main(arguments)
    except SystemExit as exit_:
        return int(exit_.code or 0)


@pytest.mark.parametrize(
    "arguments",
    [
        ["--tenants", "0"],
        ["--late-rate", "1.5"],
        ["--malformed-rate", "lots"],
        ["--events", "10"],
        ["--catalog", "tests/catalogs/bad/unknown_model.yaml"],
        ["--out", "/nonexistent-dir/usage.ndjson"],
    ],
)
def test_bad_arguments_end_in_one_error_line_and_status_2(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status = exit_status(["generate", "--period", "2026-11", "--events", "5000", *arguments])
    err = capsys.readouterr().err
    assert status == 2
    assert "error:" in err.splitlines()[-1]
    assert "Traceback" not in err
