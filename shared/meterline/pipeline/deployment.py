"""A deployment driven in process (SPEC §8): several cells and one billing home, on in-memory fakes.

Each cell meters and aggregates its own usage (``cell.Cell``) and publishes its partials as
statements into the home's exchange (``publish``); cells issue no invoices. The home ingests the
statements into its own aggregates ledger (``ingest``) and runs the same rate and close jobs as a
cell did on it, one invoice per customer for the whole deployment. Object notifications are
modelled as an inbox the tests may reorder, repeat or hold back, as S3's at-least-once,
unordered notifications may.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from meterline.adapters.memory import MemoryExchange, MemoryPublisher, StreamingMemoryStore
from meterline.bootstrap import Jobs
from meterline.catalog import Catalog
from meterline.deadline import Readiness
from meterline.topology import AGGREGATES_TABLE, TABLES

from .cell import Cell
from .ledger import is_partial
from .meter import DeliveredRecord
from .processing import MeterReport


class Deployment:
    def __init__(self, catalog: Catalog, cells: Sequence[str], stream_batch: int = 1000) -> None:
        self.catalog = catalog
        self.exchange = MemoryExchange()
        self.publisher = MemoryPublisher()
        self.cells = {name: Cell(catalog, self.publisher, stream_batch, name=name) for name in cells}
        for cell in self.cells.values():
            cell.jobs.statements = self.exchange
        self.publishers = {name: cell.jobs.publish for name, cell in self.cells.items()}
        streamed = [table.name for table in TABLES if table.stream is not None]
        self.home_store = StreamingMemoryStore([table.name for table in TABLES], streamed)
        self.home_jobs = Jobs(
            catalog, self.home_store, self.publisher, statements=self.exchange, cells=tuple(cells)
        )
        self.home = self.home_jobs.home
        self.inbox: list[str] = []
        """Objects created in the exchange and not yet announced to the home, in creation order."""
        self._seen: set[str] = set()
        self._rated = 0

    def deliver(self, cell: str, records: Sequence[DeliveredRecord]) -> MeterReport:
        return self.cells[cell].deliver(records)

    def pump(self) -> None:
        """Aggregate each cell's new usage and publish its new partials."""
        for name, cell in self.cells.items():
            self.publishers[name].run(cell.aggregate())
        self._notice()

    def finalize(self, now: datetime) -> None:
        for publisher in self.publishers.values():
            publisher.finalize(now)
        self._notice()

    def _notice(self) -> None:
        for key in self.exchange.keys(""):
            if key not in self._seen:
                self._seen.add(key)
                self.inbox.append(key)

    def receive(self, keys: Sequence[str] | None = None) -> None:
        """Announce objects to the home (default: everything in the inbox), then let it rate."""
        keys = list(self.inbox) if keys is None else keys
        self.home.receive(keys)
        self.inbox = [key for key in self.inbox if key not in set(keys)]
        self.rate()

    def rate(self) -> None:
        log_ = self.home_store.streams[AGGREGATES_TABLE.name]
        new = [entry.item for entry in log_[self._rated :] if is_partial(entry.item)]
        self._rated = len(log_)
        if new:
            self.home_jobs.charges.run(new)

    def close(self, now: datetime) -> list[Readiness]:
        """What a schedule does at ``now``: cells finalize what is due, the home takes in every
        announced object and issues what it may."""
        self.pump()
        self.finalize(now)
        self.receive()
        return self.home.close(now)
