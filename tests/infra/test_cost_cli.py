"""`meterline cost`: stack output files in, the review out; bad input gets one line."""

from __future__ import annotations

import json
import sys
import types
from decimal import Decimal
from pathlib import Path

import pytest

from infra.cost.app import Request, run
from meterline.cli import main
from tests.infra.cost_fixtures import AWS_STACK, SMALL_STACK, stack, write_stack_output


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("meterline: error: "), err
    return err


def test_json_review_carries_totals_breakdown_assumptions_and_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two stacks' outputs
    east = write_stack_output(tmp_path, AWS_STACK, "east.json")
    west = write_stack_output(
        tmp_path, stack(AWS_STACK, stack="aws-eu-west-1", region="eu-west-1"), "west.json"
    )

    # WHEN the review is asked for as JSON
    status = main(["cost", str(east), str(west), "--json"])

    # THEN both stacks are priced completely, with parts that add up and every assumption sourced
    assert status == 0
    review = json.loads(capsys.readouterr().out)
    assert review["complete"] is True
    assert [s["stack"] for s in review["stacks"]] == ["aws-us-east-1", "aws-eu-west-1"]
    first = review["stacks"][0]
    for total, part in (
        ("total_usd_month", "usd_month"),
        ("fixed_usd_month", "fixed_usd_month"),
        ("usd_per_million_events", "usd_per_million_events"),
    ):
        assert Decimal(first[total]) == sum(Decimal(s[part]) for s in first["by_service"]), total
    assert all(a["source"] for a in first["assumptions"])
    assert any(a["source"].startswith("design estimate") for a in first["assumptions"])
    assert review["references"][0]["usd_per_million_events"] == "40"


def test_what_if_volume_reprices_and_is_labelled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the AWS stack output WHEN priced at 0 and at 400 events/s
    path = write_stack_output(tmp_path, AWS_STACK)
    totals = []
    for volume in ("0", "400"):
        assert main(["cost", str(path), "--json", "--events-per-second", volume]) == 0
        priced = json.loads(capsys.readouterr().out)["stacks"][0]
        totals.append(priced)

    # THEN zero volume costs the fixed part only, and the volume's source says what-if
    assert totals[0]["total_usd_month"] == totals[0]["fixed_usd_month"]
    assert Decimal(totals[1]["total_usd_month"]) > Decimal(totals[0]["total_usd_month"])
    assert totals[1]["assumptions"][0] == {
        "name": "events per second",
        "value": "400",
        "source": "--events-per-second (what-if)",
    }


def test_text_review_lists_unpriced_and_strict_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a stack with a kind the model does not price
    resources = [*SMALL_STACK["resources"], {"kind": "opensearch_domain", "name": "search"}]
    path = write_stack_output(tmp_path, stack(SMALL_STACK, resources=resources))

    # WHEN reviewed as text, then with --strict
    assert main(["cost", str(path)]) == 0
    text = capsys.readouterr().out
    assert main(["cost", str(path), "--strict"]) == 1

    # THEN the unpriced item and the incomplete totals are spelled out
    assert "Unpriced" in text and "no cost rule for aws kind 'opensearch_domain'" in text
    assert "INCOMPLETE" in text and "Billing cells compared" in text


def test_chart_writes_png_and_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a stack output WHEN a chart directory is named
    path = write_stack_output(tmp_path, AWS_STACK)
    assert main(["cost", str(path), "--json", "--chart", str(tmp_path / "charts")]) == 0

    # THEN a PNG and an HTML page embedding it are written
    png = (tmp_path / "charts" / "cost-vs-volume.png").read_bytes()
    page = (tmp_path / "charts" / "cost-vs-volume.html").read_text()
    assert png.startswith(b"\x89PNG")
    assert "data:image/png;base64," in page and "aws-us-east-1" in page


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        ('{"usageTableName": "x"}', "no 'cost_inputs' output"),
        ('{"cost_inputs": {"stack": "s"}}', "cost_inputs.usage: expected an object"),
        ("[1, 2]", "stack outputs must be a JSON object"),
    ],
)
def test_bad_stack_output_gives_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, expected: str
) -> None:
    # GIVEN a missing or malformed stack output file
    path = tmp_path / "out.json"
    if content is not None:
        path.write_text(content)

    # WHEN it is reviewed THEN exit 2 with one line naming the file and the fault
    assert main(["cost", str(path)]) == 2
    error = _one_line_error(capsys)
    assert str(path) in error and expected in error


def test_bad_measured_file_gives_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a measured file whose figure has no source
    measured = tmp_path / "bench.json"
    measured.write_text(json.dumps({"figures": {"lambda.meter.gb_seconds": {"value": "1", "per": "event"}}}))

    # WHEN it is laid over the committed figures THEN the missing source is the error
    assert main(["cost", str(write_stack_output(tmp_path, AWS_STACK)), "--measured", str(measured)]) == 2
    assert "needs its 'source'" in _one_line_error(capsys)


def test_measured_file_overrides_a_figure_and_its_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a bench result for the meter's GB-seconds
    measured = tmp_path / "bench.json"
    source = "meterline bench --pipeline --json, 2026-11-30"
    figure = {"value": "0", "per": "million_events", "unit": "GB-seconds", "source": source}
    measured.write_text(json.dumps({"figures": {"lambda.meter.gb_seconds": figure}}))
    path = write_stack_output(tmp_path, AWS_STACK)

    # WHEN priced with and without it
    main(["cost", str(path), "--json"])
    before = json.loads(capsys.readouterr().out)["stacks"][0]
    main(["cost", str(path), "--json", "--measured", str(measured)])
    after = json.loads(capsys.readouterr().out)["stacks"][0]

    # THEN the meter's duration cost is gone and the assumption names the bench as its source
    assert Decimal(after["usd_per_million_events"]) < Decimal(before["usd_per_million_events"])
    assert {
        "name": "lambda.meter.gb_seconds",
        "value": "0 GB-seconds per million events",
        "source": source,
    } in after["assumptions"]


@pytest.mark.parametrize(
    "argv",
    [["cost"], ["cost", "x.json", "--offline"], ["cost", "--events-per-second", "lots", "x.json"]],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        status = main(argv)
        raise SystemExit(status)
    assert stop.value.code == 2
    assert "error" in capsys.readouterr().err


def test_offline_builds_each_stack_through_preview(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a clone with two stacks and a preview that returns their outputs
    (tmp_path / "stacks").mkdir()
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "preview.py").write_text("")
    for name in ("aws-us-east-1", "aws-eu-west-1"):
        (tmp_path / "stacks" / f"Pulumi.{name}.yaml").write_text("config: {}\n")
    built: list[str] = []

    def preview_stack(name: str) -> dict[str, object]:
        built.append(name)
        region = name.removeprefix("aws-")
        return {
            "stack": name,
            "resources": [],
            "outputs": {"cost_inputs": stack(AWS_STACK, stack=name, region=region)},
        }

    monkeypatch.setitem(sys.modules, "infra.preview", types.SimpleNamespace(preview_stack=preview_stack))
    request = Request(tmp_path, [], [], None, None, True, None, False, False)

    # WHEN every stack is reviewed offline
    assert run(request) == 0

    # THEN each stack in stacks/ was built and priced
    assert sorted(built) == ["aws-eu-west-1", "aws-us-east-1"]
    assert [s["stack"] for s in json.loads(capsys.readouterr().out)["stacks"]] == sorted(built)


def test_offline_unknown_stack_is_one_line(tmp_path: Path) -> None:
    # GIVEN a clone with no such stack WHEN it is asked for THEN the error names the missing file
    (tmp_path / "stacks").mkdir()
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "preview.py").write_text("")
    with pytest.raises(Exception, match=r"no .*Pulumi\.aws-mars-1\.yaml"):
        run(Request(tmp_path, [], ["aws-mars-1"], None, None, True, None, False, False))


def test_text_review_leads_with_the_comparison_and_each_total_and_keeps_the_rest_for_detail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two stacks' outputs
    east = write_stack_output(tmp_path, AWS_STACK, "east.json")
    west = write_stack_output(
        tmp_path, stack(AWS_STACK, stack="aws-eu-west-1", region="eu-west-1"), "west.json"
    )
    # WHEN they are reviewed as text, then with --detail
    assert main(["cost", str(east), str(west)]) == 0
    brief = capsys.readouterr().out
    assert main(["cost", str(east), str(west), "--detail"]) == 0
    detail = capsys.readouterr().out
    # THEN the review opens with the comparison, then one line per stack with its total
    assert brief.lstrip().startswith("Billing cells compared")
    for name in ("aws-us-east-1", "aws-eu-west-1"):
        [total] = [line for line in brief.splitlines() if line.startswith(f"{name}: Fixed $")]
        assert "/month at " in total
    # AND assumptions, services and cost lines come only with --detail, after the same opening
    for section in ("Assumptions", "Cost by service", "Cost lines"):
        assert section not in brief and section in detail
    assert detail.startswith(brief.removesuffix(brief.splitlines()[-1] + "\n"))
    assert len(brief.splitlines()) < len(detail.splitlines()) / 4
