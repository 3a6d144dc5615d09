"""Publish (a cell's job, SPEC §8): the cell's partials go to the billing home as statements, and
after each period's ``end + grace`` the cell's final marker for it.

- ``run`` (aggregates stream): each new partial becomes its statements, put create-only in the
  home's exchange. A statement's key and bytes follow from the partial alone, so a retry, a
  redelivered stream batch or a crash halfway publishes nothing twice: the repeat is a no-op.
- ``catch_up`` (schedule, where no stream triggers publish): the partials of every period not yet
  final that carry no ``published`` mark are published, then marked; a crash between the two
  publishes them again, a no-op.
- ``finalize`` (schedule): once a period's grace has passed, its ledger is sealed for good (later
  usage of it is filed in the next period's ledger, and published as late), every partial of the
  ledger is published (the ones the stream already published are skipped by listing the
  exchange), then the final marker names every statement of the period. Periods without usage
  in this cell are finalized too: the home waits for every cell's marker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from meterline.catalog import Catalog
from meterline.exchange import Exchange
from meterline.periods import Period
from meterline.ports import Item, Store
from meterline.records import unpack_book
from meterline.statements import FinalMarker, Statement, period_prefix, statements_of
from meterline.topology import AGGREGATES_TABLE

from .close import may_issue
from .ledger import PeriodLedger, is_partial, period_pk

TABLE = AGGREGATES_TABLE.name
FINALIZED = "finalized"
"""The cell ledger's record of the periods whose final marker stands: ``finalized|<period>``."""
PUBLISHED = "published"
"""The cell ledger's cursor for ``catch_up``: ``published|<period>`` holds the key of each partial
of the period's ledger whose statements are out."""


@dataclass(frozen=True, slots=True)
class Published:
    """What one run of publish's schedule put: new statements, and the periods it reported final."""

    statements: list[Statement]
    finals: list[FinalMarker]

    def to_json(self) -> dict[str, Any]:
        return {"published": len(self.statements), "final": [str(marker.period) for marker in self.finals]}


class StatementPublisher:
    def __init__(self, catalog: Catalog, store: Store, exchange: Exchange, cell: str) -> None:
        self.catalog = catalog
        self.store = store
        self.exchange = exchange
        self.cell = cell

    def run(self, new_items: list[Item]) -> list[Statement]:
        """Publish the statements of the new partials among the items; return those this call created."""
        created = []
        for item in new_items:
            if is_partial(item):
                created += [s for s in self.statements(item) if self.exchange.put(s.key, s.body)]
        return created

    def statements(self, partial: Item) -> list[Statement]:
        source = "|".join((str(partial["pk"]), str(partial["sk"])))
        return statements_of(self.cell, source, unpack_book(self.catalog, bytes(partial["book"])))  # type: ignore[arg-type]

    def run_schedule(self, now: datetime) -> Published:
        """publish's schedule (every cloud): catch up, then report final what is due. A store or
        exchange failure raises; the next run goes on, and what was put stands (a no-op again)."""
        return Published(self.catch_up(now), self.finalize(now))

    def catch_up(self, now: datetime) -> list[Statement]:
        """Publish every partial not marked published in the ledgers of the periods up to ``now``'s
        that are not final yet; return the statements this call created."""
        done = {str(item["sk"]) for item in self.store.query(TABLE, FINALIZED)}
        created: list[Statement] = []
        period, current = self.catalog.first_period, Period.of(now)
        while period <= current:
            if str(period) not in done:
                created += self.catch_up_period(period)
            period = period.next()
        return created

    def catch_up_period(self, period: Period) -> list[Statement]:
        cursor = f"{PUBLISHED}|{period}"
        published = {str(item["sk"]) for item in self.store.query(TABLE, cursor)}
        created = []
        for partial in self.store.query(TABLE, period_pk(period), "partial|"):
            if str(partial["sk"]) in published:
                continue
            created += self.run([partial])
            self.store.put(TABLE, {"pk": cursor, "sk": str(partial["sk"])})
        return created

    def due(self, now: datetime) -> list[Period]:
        """Periods from billing's first whose grace has passed and whose marker is not out yet."""
        done = {str(item["sk"]) for item in self.store.query(TABLE, FINALIZED)}
        periods = []
        period = self.catalog.first_period
        while may_issue(period, self.catalog.billing.grace, now):
            if str(period) not in done:
                periods.append(period)
            period = period.next()
        return periods

    def finalize(self, now: datetime) -> list[FinalMarker]:
        return [self.finalize_period(period, now) for period in self.due(now)]

    def finalize_period(self, period: Period, now: datetime) -> FinalMarker:
        PeriodLedger(self.catalog, self.store, period).seal(now, final=True)
        published = set(self.exchange.keys(period_prefix(self.cell, period)))
        own: list[str] = []
        for partial in self.store.query(TABLE, period_pk(period), "partial|"):
            for statement in self.statements(partial):
                if statement.key not in published:
                    self.exchange.put(statement.key, statement.body)
                if statement.period == period:
                    own.append(statement.statement_id)
        marker = FinalMarker(self.cell, period, tuple(sorted(own)))
        self.exchange.put(marker.key, marker.to_bytes())
        self.store.put(TABLE, {"pk": FINALIZED, "sk": str(period)})
        return marker
