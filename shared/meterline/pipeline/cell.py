"""One billing cell driven in process: the jobs wired to one store and publisher, with the
table streams pumped the way Lambda's stream event source mappings would.

Used by the tests, the pipeline benchmark and the local runtime; the AWS handlers wire the same
jobs to DynamoDB and MSK instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from meterline.adapters.memory import StreamingMemoryStore
from meterline.catalog import Catalog
from meterline.markets import Market
from meterline.offline import CELL
from meterline.ports import Item, Publisher
from meterline.records import AcceptedUsage
from meterline.topology import AGGREGATES_TABLE, TABLES, USAGE_TABLE

from .aggregate import Aggregator, StreamRecord
from .close import Closer
from .ledger import is_partial
from .meter import DeliveredRecord, Meter, MeterReport
from .rate import RunningCharges


@dataclass
class StreamPosition:
    usage: int = 0
    aggregates: int = 0


@dataclass
class Cell:
    catalog: Catalog
    publisher: Publisher
    grace: timedelta = timedelta(hours=1)
    stream_batch: int = 1000
    name: str = CELL
    """``<cloud>-<region>``: the market its measurements carry (SPEC §8)."""
    store: StreamingMemoryStore = field(init=False)
    position: StreamPosition = field(default_factory=StreamPosition)

    def __post_init__(self) -> None:
        streamed = [table.name for table in TABLES if table.stream is not None]
        self.store = StreamingMemoryStore([table.name for table in TABLES], streamed)
        self.meter = Meter(self.catalog, self.store, self.publisher, market=Market.of_cell(self.name))
        self.aggregator = Aggregator(self.catalog, self.store)
        self.charges = RunningCharges(self.catalog, self.store, self.publisher)
        self.closer = Closer(self.catalog, self.store, self.publisher, self.grace)

    def deliver(self, records: Iterable[DeliveredRecord]) -> MeterReport:
        return self.meter.run(records)

    def pump(self) -> None:
        """Feed every new usage item to the aggregator and every new partial to rating."""
        new = self.aggregate()
        if new:
            self.charges.run(new)

    def aggregate(self) -> list[Item]:
        """Feed every new usage item to the aggregator; return the partials written since last asked."""
        usage_log = self.store.streams[USAGE_TABLE.name]
        while self.position.usage < len(usage_log):
            batch = usage_log[self.position.usage : self.position.usage + self.stream_batch]
            records = [StreamRecord(entry.sequence, AcceptedUsage.from_item(entry.item)) for entry in batch]
            self.aggregator.run(records)
            self.position.usage += len(batch)
        partial_log = self.store.streams[AGGREGATES_TABLE.name]
        new = [entry.item for entry in partial_log[self.position.aggregates :] if is_partial(entry.item)]
        self.position.aggregates = len(partial_log)
        return new

    def close(self, now: datetime) -> None:
        self.pump()
        self.closer.run(now)
