"""The composition root: settings in, the cell's jobs out, wired to its store, publisher and clock.

Every entrypoint builds its jobs here: the handlers of the three clouds (``Wired``, once per
function instance), the local runtime, the benchmarks and the tests, which hand in their own
store, publisher or clock. ``Jobs`` is the one place a job is constructed; ``bootstrap`` the one
place settings become adapters (each cloud's settings know their own: see ``CloudSettings``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from meterline.catalog import Catalog, load_catalog
from meterline.ports import Clock, Publisher, Store
from meterline.settings import SettingsError

if TYPE_CHECKING:  # each job is imported when it is first asked for: a function loads only its own
    from meterline.exchange import Exchange
    from meterline.metering import Metering
    from meterline.pipeline.aggregate import Aggregator
    from meterline.pipeline.close import Closer
    from meterline.pipeline.home import Home
    from meterline.pipeline.ingest import Ingest
    from meterline.pipeline.meter import Meter
    from meterline.pipeline.publish import StatementPublisher
    from meterline.pipeline.rate import RunningCharges

LOCAL_CELL = "local"
"""A cell that names no market of its own: its measurements carry ``$cloud`` = ``$region`` = local."""


def system_clock() -> datetime:
    return datetime.now(UTC)


class CloudSettings(Protocol):
    """A cloud's settings (``settings.CellSettings``), which know how to reach its store and broker."""

    @property
    def catalog(self) -> Path: ...

    @property
    def cell_name(self) -> str: ...

    @property
    def cells(self) -> tuple[str, ...]: ...

    def open_store(self) -> Store: ...

    def open_publisher(self) -> Publisher: ...

    def open_exchange(self) -> Exchange: ...


@dataclass(eq=False)
class Jobs:
    """The jobs of a cell, or of the billing home, on one store, publisher and clock, each built
    when first asked for. A cell meters, aggregates and publishes its statements; the home ingests
    them, rates and closes (SPEC §8). The single-cell pipeline (the local runtime) rates and closes
    on its own ledger."""

    catalog: Catalog
    store: Store
    publisher: Publisher
    clock: Clock = field(default=system_clock)
    settings: CloudSettings | None = None
    """What they were bootstrapped from (None: built by hand, as tests do)."""
    cell: str = LOCAL_CELL
    """``<cloud>-<region>``: the market meter stamps, the name publish writes under."""
    cells: tuple[str, ...] = ()
    """The home: the cells that must report each period final before its deadline."""
    statements: Exchange | None = None
    """The statement exchange handed in (else the settings open the home's bucket when first used)."""

    @cached_property
    def meter(self) -> Meter:
        from meterline.markets import Market
        from meterline.pipeline.meter import Meter

        # a named cell belongs to a deployment with a billing home: no invoice ledger of its own
        market, issues_here = Market.of_cell(self.cell), self.cell == LOCAL_CELL
        return Meter(self.catalog, self.store, self.publisher, market=market, issues_here=issues_here)

    @cached_property
    def metering(self) -> Metering:
        return self.meter.metering

    @cached_property
    def aggregator(self) -> Aggregator:
        from meterline.pipeline.aggregate import Aggregator

        return Aggregator(self.catalog, self.store)

    @cached_property
    def charges(self) -> RunningCharges:
        from meterline.pipeline.rate import RunningCharges

        return RunningCharges(self.catalog, self.store, self.publisher)

    @cached_property
    def closer(self) -> Closer:
        from meterline.pipeline.close import Closer

        return Closer(self.catalog, self.store, self.publisher)  # the catalog's billing.grace

    @cached_property
    def exchange(self) -> Exchange:
        """The billing home's statement exchange: a cell's publish writes it, the home's ingest reads it."""
        if self.statements is not None:
            return self.statements
        if self.settings is None:
            raise SettingsError("these jobs were built without a statement exchange or settings to open one")
        return self.settings.open_exchange()

    @cached_property
    def publish(self) -> StatementPublisher:
        from meterline.pipeline.publish import StatementPublisher

        return StatementPublisher(self.catalog, self.store, self.exchange, self.cell)

    @cached_property
    def ingest(self) -> Ingest:
        from meterline.pipeline.ingest import Ingest

        return Ingest(self.catalog, self.store, self.exchange)

    @cached_property
    def home(self) -> Home:
        """The home's close: a period is issued once every cell reported it, or at its deadline."""
        from meterline.pipeline.home import Home

        return Home(self.catalog, self.closer, self.ingest, self.cells)


def bootstrap(
    settings: CloudSettings,
    *,
    store: Store | None = None,
    publisher: Publisher | None = None,
    clock: Clock | None = None,
) -> Jobs:
    """The jobs of a cell as ``settings`` describe it; what is handed in is used instead. The
    publisher connects at its first message: a job that never publishes never loads a Kafka client."""
    return Jobs(
        load_catalog(settings.catalog),
        settings.open_store() if store is None else store,
        LazyPublisher(settings.open_publisher) if publisher is None else publisher,
        system_clock if clock is None else clock,
        settings,
        cell=settings.cell_name,
        cells=settings.cells,
    )


class LazyPublisher:
    """The publisher port, connected when first used."""

    def __init__(self, connect: Callable[[], Publisher]) -> None:
        self._connect = connect
        self._publisher: Publisher | None = None
        self._lock = threading.Lock()

    def _connected(self) -> Publisher:
        with self._lock:
            if self._publisher is None:
                self._publisher = self._connect()
            return self._publisher

    def publish(
        self, topic: str, key: bytes, value: bytes, headers: Mapping[str, bytes] | None = None
    ) -> None:
        self._connected().publish(topic, key, value, headers)

    def flush(self) -> None:
        if self._publisher is not None:
            self._publisher.flush()


class Wired:
    """The jobs of one function instance: bootstrapped from ``settings()`` at the first call and kept
    for the instance's life (clients are reused across invocations). The local runtime and the
    tests hand in jobs of their own with ``use``; ``release`` lets go of them."""

    def __init__(self, settings: Callable[[], CloudSettings]) -> None:
        self._settings = settings
        self._jobs: Jobs | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Jobs:
        with self._lock:
            if self._jobs is None:
                self._jobs = bootstrap(self._settings())
            return self._jobs

    def use(self, jobs: Jobs) -> None:
        with self._lock:
            self._jobs = jobs

    def release(self) -> None:
        with self._lock:
            self._jobs = None
