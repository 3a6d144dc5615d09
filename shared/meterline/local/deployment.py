"""Several billing cells on this machine at once (SPEC §8): each a cloud's local cell with stand-ins
of its own (AWS on moto, GCP on the Firestore emulator, Azure on Azurite), named
``<cloud>-<region>``, its usage produced and drained side by side with the others'.

The driver produces every cell's share of a step in a thread per cell and waits for all of them:
the cells' servers and function processes then share the machine's cores, and what one cell waits
for (a round trip to its stand-in) another uses. ``Throughput`` watches each stage of each cell
(its trigger's deliveries over time) for the demo's per-stage figures.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from meterline.exchange import Exchange

from .azure import AzureCell
from .cell import LocalCell
from .cells import CellName
from .gcp import GcpCell
from .lifecycle import CellOptions

AnyCell = LocalCell | GcpCell | AzureCell


def open_cell(cloud: str, options: CellOptions) -> AnyCell:
    """The cloud's local cell, not started yet (a context manager starts and stops it)."""
    if cloud == "gcp":
        return GcpCell(options)
    if cloud == "azure":
        return AzureCell(options)
    return LocalCell(options)


def cell_options(
    cell: CellName, catalog: Path, out: Path, exchange: Callable[[], Exchange] | None = None
) -> CellOptions:
    """One log for every cell's functions (their stdout), one per server: ``demo.<cell>.moto.log``."""
    region = cell.region if cell.cloud == "aws" else "us-east-1"
    return CellOptions(
        catalog, out / "demo.log", out / "on-failure.ndjson", None, None, region, str(cell), exchange
    )


@dataclass
class Stage:
    """One stage of one cell: what its trigger delivered, and when it first and last moved."""

    count: Callable[[], int]
    delivered: int = 0
    first: float | None = None
    last: float | None = None
    seconds: float = 0.0
    """Time between its first and last movement, summed over the steps the driver ran."""

    def sample(self, now: float) -> None:
        delivered = self.count()
        if delivered != self.delivered:
            if self.first is None:
                self.first = now
            self.last = now
            self.delivered = delivered

    def close_step(self, started: float) -> None:
        """The step is over: add its moving time (from the step's start, to the last movement)."""
        if self.last is not None and self.last >= started:
            self.seconds += self.last - started
        self.first = self.last = None

    @property
    def per_second(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0


@dataclass
class Throughput:
    """Per cell, per stage: records delivered and the time the stage took to deliver them."""

    stages: dict[str, dict[str, Stage]] = field(default_factory=dict)

    def watch(self, name: str, cell: AnyCell) -> None:
        self.stages[name] = {
            "meter": Stage(lambda: cell.meter.delivered),
            "aggregate": Stage(lambda: cell.usage_stream.delivered),
            "rate": Stage(lambda: cell.aggregates_stream.delivered),
        }

    def sample(self) -> None:
        now = time.monotonic()
        for stages in self.stages.values():
            for stage in stages.values():
                stage.sample(now)

    def close_step(self, started: float) -> None:
        self.sample()
        for stages in self.stages.values():
            for stage in stages.values():
                stage.close_step(started)


class CellsDriver:
    """Runs a step on every cell at once, a thread each, while the caller's ``tick`` runs here."""

    def __init__(self, cells: dict[str, AnyCell], throughput: Throughput) -> None:
        self.cells = cells
        self.throughput = throughput

    def run(
        self,
        step: Callable[[str, AnyCell], None],
        tick: Callable[[], None],
        sample: bool = True,
    ) -> None:
        """``step(name, cell)`` on every cell side by side; the first failure is raised here, after
        the others stopped (a failing cell stops every cell: their drains raise on ``stop``).
        ``sample``: the stages' throughput counts this step (the usage flowing), or not (publish)."""
        failures: list[BaseException] = []
        started = time.monotonic()

        def work(name: str, cell: AnyCell) -> None:
            try:
                step(name, cell)
            except BaseException as error:  # raised in the driver's thread below
                failures.append(error)
                for other in self.cells.values():
                    other.stop.set()

        threads = [
            threading.Thread(target=work, args=(name, cell), name=f"drive-{name}", daemon=True)
            for name, cell in self.cells.items()
        ]
        for thread in threads:
            thread.start()
        try:
            while any(thread.is_alive() for thread in threads):
                if sample:
                    self.throughput.sample()
                tick()
                time.sleep(0.1)
        finally:
            for cell in self.cells.values():
                if any(thread.is_alive() for thread in threads):
                    cell.stop.set()
            for thread in threads:
                thread.join(timeout=30)
        if sample:
            self.throughput.close_step(started)
        tick()
        if failures:
            raise failures[0]


@contextlib.contextmanager
def started_cells(
    cells: Sequence[CellName], catalog: Path, out: Path, exchange: Callable[[], Exchange] | None = None
) -> Iterator[dict[str, AnyCell]]:
    """Every cell started (in order) and stopped on the way out (in reverse), also on Ctrl-C."""
    with contextlib.ExitStack() as stack:
        running: dict[str, AnyCell] = {}
        for cell in cells:
            running[str(cell)] = opened = open_cell(cell.cloud, cell_options(cell, catalog, out, exchange))
            stack.enter_context(opened)
        yield running
