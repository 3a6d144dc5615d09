"""`meterline cost`: read the stacks' cost inputs, price them, print the review."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from rich.console import Console

from infra.config import stack_names
from infra.cost.chart import write_charts
from infra.cost.inputs import CostError, CostInputs, cost_inputs_of_outputs, read_stack_output
from infra.cost.measured import MEASURED_JSON, load_figures
from infra.cost.model import estimate
from infra.cost.prices import load_price_book, load_references
from infra.cost.report import render, to_json


@dataclass(frozen=True)
class Request:
    repo: Path
    files: Sequence[Path]
    offline: Sequence[str] | None
    """Stack names to build with infra.preview; empty means every stack in stacks/; None: use files."""
    measured: Path | None
    events_per_second: Decimal | None
    as_json: bool
    chart_dir: Path | None
    strict: bool
    detail: bool


def run(request: Request) -> int:
    inputs = (
        _offline_inputs(request.repo, request.offline)
        if request.offline is not None
        else [read_stack_output(path) for path in request.files]
    )
    if not inputs:
        raise CostError("no stack outputs given (name JSON files, or use --offline)")
    figures = load_figures(MEASURED_JSON)
    if request.measured is not None:
        figures = figures.overlaid(load_figures(request.measured))
    prices = load_price_book()
    costs = [estimate(item, prices, figures, request.events_per_second) for item in inputs]
    references = load_references()
    if request.as_json:
        sys.stdout.write(json.dumps(to_json(costs, references), indent=2) + "\n")
    else:
        console = Console(width=None if sys.stdout.isatty() else 150)
        render(console, costs, references, detail=request.detail)
    if request.chart_dir is not None:
        png, page = write_charts(costs, request.chart_dir)
        if not request.as_json:
            print(f"chart: {png} and {page}")
    return 1 if request.strict and not all(cost.complete for cost in costs) else 0


def _offline_inputs(repo: Path, names: Sequence[str]) -> list[CostInputs]:
    if not (repo / "infra" / "preview.py").is_file():
        raise CostError(
            f"--offline needs {repo / 'infra' / 'preview.py'} (preview_stack), which is not there"
        )
    from infra.preview import preview_stack  # type: ignore[import-not-found,unused-ignore]

    known = stack_names(repo / "stacks")
    wanted = list(names) or known
    if not wanted:
        raise CostError(f"no stacks in {repo / 'stacks'} (Pulumi.<stack>.yaml)")
    result = []
    for name in wanted:
        if name not in known:
            raise CostError(f"stack {name!r}: no {repo / 'stacks' / f'Pulumi.{name}.yaml'}")
        try:
            preview = preview_stack(name)
        except Exception as error:  # the preview runs a whole Pulumi program: any failure is reported
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CostError(f"stack {name!r}: preview failed: {first}") from None
        outputs = preview.get("outputs", preview) if isinstance(preview, dict) else preview
        result.append(cost_inputs_of_outputs(outputs, f"preview of {name}"))
    return result
