"""A `meterline demo` run as a user starts it, and its files read back: the demo checks itself, and the
e2e tests check it again from what it wrote alone, so a demo that skipped or botched its own check
still fails."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson

from meterline.catalog import load_catalog
from meterline.offline import CELL, RateResult, rate_cells
from meterline.periods import Period
from meterline.reconcile import reconcile


def demo_command(out: Path, *arguments: str) -> list[str]:
    return [sys.executable, "-m", "meterline.cli", "demo", "--out", str(out), *arguments]


def run_demo(
    out: Path, *arguments: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        demo_command(out, *arguments), capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


@dataclass(frozen=True)
class DemoRun:
    status: int
    out: Path
    output: str
    """stdout, then stderr."""

    @classmethod
    def of(cls, out: Path, *arguments: str, timeout: float = 300) -> DemoRun:
        done = run_demo(out, *arguments, timeout=timeout)
        return cls(done.returncode, out, done.stdout + done.stderr)

    @cached_property
    def documents(self) -> list[dict[str, Any]]:
        """invoices.json: one document per closed month."""
        documents: list[dict[str, Any]] = orjson.loads((self.out / "invoices.json").read_bytes())
        return documents

    @cached_property
    def events_by_cell(self) -> dict[str, list[bytes]]:
        """Each cell's events: ``events/<cell>.ndjson`` when the run had several cells, else the one
        cell's ``events.ndjson``."""
        cells = sorted((self.out / "events").glob("*.ndjson"))
        if not cells:
            return {CELL: (self.out / "events.ndjson").read_bytes().splitlines()}
        return {path.stem: path.read_bytes().splitlines() for path in cells}

    @property
    def events(self) -> list[bytes]:
        return [line for lines in self.events_by_cell.values() for line in lines]

    @property
    def invoices(self) -> dict[str, list[dict[str, Any]]]:
        return {document["period"]: document["invoices"] for document in self.documents}

    def rated(self, period: str) -> RateResult:
        """`meterline rate` on the events the run produced, every cell's."""
        month = Period.parse(period)
        return rate_cells(load_catalog(self.out / "catalog.yaml"), self.events_by_cell, month, month)[0]

    @cached_property
    def amendments(self) -> list[dict[str, Any]]:
        """amendments.json: every amendment the run issued."""
        amendments: list[dict[str, Any]] = orjson.loads((self.out / "amendments.json").read_bytes())
        return amendments

    def differences_from_rate(self) -> list[Any]:
        """SPEC §7's invariant over the closed months, every field and tenant."""
        periods = sorted(self.invoices)
        catalog = load_catalog(self.out / "catalog.yaml")
        rated = rate_cells(catalog, self.events_by_cell, Period.parse(periods[0]), Period.parse(periods[-1]))
        return reconcile([result.to_json() for result in rated], self.invoices, self.amendments)

    def amended_periods(self) -> set[str]:
        return {amendment["adjusts_period"] for amendment in self.amendments}


def assert_invoices_equal_rate_through_amendments(run: DemoRun) -> None:
    """No difference with `meterline rate`, both months closed, the late usage of the first amended,
    and every invoice and amendment numbered in one gapless sequence."""
    found = run.differences_from_rate()
    assert run.status == 0, run.output
    assert found == []
    assert sorted(run.invoices) == ["2026-10", "2026-11"]
    assert run.amended_periods() == {"2026-10"}
    documents = [*run.amendments, *(invoice for invoices in run.invoices.values() for invoice in invoices)]
    numbers = sorted(int(str(document["number"]).removeprefix("ML-")) for document in documents)
    assert numbers == list(range(1, len(documents) + 1))


def assert_ledgers_count_what_was_produced(run: DemoRun) -> None:
    """Every record produced is in each month's counts, reason by reason as `meterline rate` says,
    and the run reconciled them itself."""
    for document in run.documents:
        expected = run.rated(document["period"])
        assert document["summary"]["received"] == len(run.events)
        assert document["summary"] == expected.summary.to_json()
        assert document["unbilled_tenants"] == expected.unbilled_tenants
    assert run.status == 0, run.output
    assert "✓ reconciled" in run.output
