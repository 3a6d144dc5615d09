"""One billing cell driven in process: the jobs (``bootstrap.Jobs``) on an in-memory store with
streams, and the table streams pumped the way Lambda's stream event source mappings would.

Used by the tests and the pipeline benchmark; the handlers get the same jobs on DynamoDB, Firestore
or Azure Tables from the composition root instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from meterline.adapters.memory import StreamingMemoryStore
from meterline.bootstrap import Jobs
from meterline.catalog import Catalog
from meterline.ports import Publisher
from meterline.records import AcceptedUsage
from meterline.topology import AGGREGATES_TABLE, TABLES, USAGE_TABLE

from .aggregate import StreamRecord
from .ledger import is_partial
from .meter import DeliveredRecord
from .processing import AggregateProcessor, MeterProcessor, MeterReport


@dataclass
class StreamPosition:
    usage: int = 0
    aggregates: int = 0


@dataclass
class Cell:
    catalog: Catalog
    publisher: Publisher
    stream_batch: int = 1000
    store: StreamingMemoryStore = field(init=False)
    position: StreamPosition = field(default_factory=StreamPosition)

    def __post_init__(self) -> None:
        streamed = [table.name for table in TABLES if table.stream is not None]
        self.store = StreamingMemoryStore([table.name for table in TABLES], streamed)
        self.jobs = Jobs(self.catalog, self.store, self.publisher)
        self.meter, self.aggregator = self.jobs.meter, self.jobs.aggregator
        self.charges, self.closer = self.jobs.charges, self.jobs.closer
        # as the Lambda triggers process them: a Kafka batch, a stream batch
        self.metering, self.aggregating = MeterProcessor(self.meter), AggregateProcessor(self.aggregator)

    def deliver(self, records: Iterable[DeliveredRecord]) -> MeterReport:
        return self.metering.run(records)

    def pump(self, now: datetime | None = None) -> None:
        """Feed every new usage item to the aggregator and every new partial to rating (as of ``now``)."""
        usage_log = self.store.streams[USAGE_TABLE.name]
        while self.position.usage < len(usage_log):
            batch = usage_log[self.position.usage : self.position.usage + self.stream_batch]
            records = [StreamRecord(entry.sequence, AcceptedUsage.from_item(entry.item)) for entry in batch]
            self.aggregating.run(records)
            self.position.usage += len(batch)
        partial_log = self.store.streams[AGGREGATES_TABLE.name]
        new = [entry.item for entry in partial_log[self.position.aggregates :] if is_partial(entry.item)]
        self.position.aggregates = len(partial_log)
        if new:
            self.charges.run(new, now)

    def close(self, now: datetime) -> None:
        self.pump()
        self.closer.run(now)
