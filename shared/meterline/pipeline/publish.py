"""Publish (a cell's job, SPEC §8): the cell's partials go to the billing home as statements, and
after each period's ``end + grace`` the cell's final marker for it.

- ``run`` (aggregates stream): each new partial becomes its statements, put create-only in the
  home's exchange. A statement's key and bytes follow from the partial alone, so a retry, a
  redelivered stream batch or a crash halfway publishes nothing twice: the repeat is a no-op.
- ``catch_up`` (schedule, where no stream triggers publish): for every period not yet final, the
  partials published since its last run. Partials are filed under numbered windows that a fence
  seals for good (``ledger``), so a watermark, "every partial of the sealed windows up to W is
  published", is a durable cursor: a run reads the cursor, the windows after it (one sealed since
  the last run, once more; the open one, from its start) and the ``published`` marks of those
  windows, publishes what is unmarked, marks it, and moves the cursor past the sealed ones with a
  conditional write, so a twin never moves it back. Publish seals an open window once it holds
  ``SEAL_AFTER_PARTIALS`` partials, so the open window a run reads again stays that small whatever
  rate's rollups wait for: a run costs what is new, not the month. A crash between a put and its
  mark or the cursor publishes them again, a no-op; nothing is ever skipped. Rollups keep the
  partials they fold (nothing deletes a partial), so publish reads them whenever it gets there.
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
from meterline.ports import ConditionFailedError, Item, PutIf, Store
from meterline.records import unpack_book
from meterline.statements import FinalMarker, Statement, period_prefix, statements_of
from meterline.topology import AGGREGATES_TABLE

from .close import may_issue
from .ledger import (
    PARTIAL,
    SEAL_AFTER_PARTIALS,
    PeriodLedger,
    Window,
    is_partial,
    partial_prefix,
    period_pk,
    periods_with_usage,
)

TABLE = AGGREGATES_TABLE.name
FINALIZED = "finalized"
"""The cell ledger's record of the periods whose final marker stands: ``finalized|<period>``."""
PUBLISHED = "published"
"""The cell ledger's record of ``catch_up`` in a period's ledger, ``published|<period>``: ``through``
(every partial of the sealed windows up to its ``window`` is out), and the key of each partial of
the windows after it whose statements are out."""
THROUGH = "through"


def published_pk(period: Period) -> str:
    return f"{PUBLISHED}|{period}"


def published_through(store: Store, period: Period) -> int:
    """The last sealed window of the period whose every partial is published (-1: none yet)."""
    item = store.get(TABLE, published_pk(period), THROUGH)
    return -1 if item is None else int(str(item["window"]))


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
        done = self.finalized()  # read once: neither step changes it before finalize writes
        return Published(self.catch_up(now, done), self.finalize(now, done))

    def finalized(self) -> set[str]:
        return {str(item["sk"]) for item in self.store.query(TABLE, FINALIZED)}

    def catch_up(self, now: datetime, finalized: set[str] | None = None) -> list[Statement]:
        """Publish the partials not published yet in the ledgers of the periods up to ``now``'s
        that are not final yet (those with usage: aggregate lists them before filing a partial);
        return the statements this call created. ``finalized``: the periods already final, if read."""
        done = self.finalized() if finalized is None else finalized
        first, current = self.catalog.first_period, Period.of(now)
        created: list[Statement] = []
        for period in sorted(periods_with_usage(self.store)):
            if first <= period <= current and str(period) not in done:
                created += self.catch_up_period(period, now)
        return created

    def catch_up_period(self, period: Period, now: datetime) -> list[Statement]:
        """Publish the windows after the period's cursor, up to the open one, and move the cursor
        past those of them that were sealed when read."""
        ledger = PeriodLedger(self.catalog, self.store, period)
        through = sealed = published_through(self.store, period)
        created: list[Statement] = []
        while True:
            window = ledger.window(sealed + 1)
            created += self.publish_window(ledger, window, now)
            if not window.sealed:
                break
            sealed = window.number
            if window.final:
                break
        if sealed > through:
            self.advance(period, through, sealed)
        return created

    def publish_window(self, ledger: PeriodLedger, window: Window, now: datetime) -> list[Statement]:
        """Publish the window's partials that carry no ``published`` mark, then mark them; seal
        the window if it is open and holds enough partials."""
        partials = ledger.partials(window.number)
        if not partials:
            return []
        marks = published_pk(ledger.period)
        marked = {str(item["sk"]) for item in self.store.query(TABLE, marks, partial_prefix(window.number))}
        created = []
        for partial in partials:
            if str(partial["sk"]) not in marked:
                created += self.run([partial])
                self.store.put(TABLE, {"pk": marks, "sk": str(partial["sk"])})
        if not window.sealed and len(partials) >= SEAL_AFTER_PARTIALS:
            # partials may join it until the fence stands: the next run reads it once more, sealed
            ledger.seal_window(window.number, now)
        return created

    def advance(self, period: Period, expected: int, through: int) -> None:
        """Move the period's cursor from ``expected`` to ``through``, never back: a twin that moved
        it as far or further wins."""
        item: Item = {"pk": published_pk(period), "sk": THROUGH, "window": through}
        while True:
            try:
                self.store.transact([PutIf(TABLE, item, "window", None if expected < 0 else expected)])
                return
            except ConditionFailedError:
                expected = published_through(self.store, period)
                if expected >= through:
                    return

    def due(self, now: datetime, finalized: set[str] | None = None) -> list[Period]:
        """Periods from billing's first whose grace has passed and whose marker is not out yet."""
        done = self.finalized() if finalized is None else finalized
        periods = []
        period = self.catalog.first_period
        while may_issue(period, self.catalog.billing.grace, now):
            if str(period) not in done:
                periods.append(period)
            period = period.next()
        return periods

    def finalize(self, now: datetime, finalized: set[str] | None = None) -> list[FinalMarker]:
        return [self.finalize_period(period, now) for period in self.due(now, finalized)]

    def finalize_period(self, period: Period, now: datetime) -> FinalMarker:
        PeriodLedger(self.catalog, self.store, period).seal(now, final=True)
        published = set(self.exchange.keys(period_prefix(self.cell, period)))
        own: list[str] = []
        for partial in self.store.query(TABLE, period_pk(period), PARTIAL):
            for statement in self.statements(partial):
                if statement.key not in published:
                    self.exchange.put(statement.key, statement.body)
                if statement.period == period:
                    own.append(statement.statement_id)
        marker = FinalMarker(self.cell, period, tuple(sorted(own)))
        self.exchange.put(marker.key, marker.to_bytes())
        self.store.put(TABLE, {"pk": FINALIZED, "sk": str(period)})
        return marker
