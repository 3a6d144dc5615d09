"""Ingest (the billing home's job, SPEC §8): each cell's statements into the home's aggregates
ledger, each applied once however often and in whatever order it is delivered.

A statement becomes a partial of the ledger that bills its period now (its own, or once that is
issued the first open one after it, labelled with its own period: late usage, which the close
turns into adjustments), keyed by (cell, statement id), written in ONE transaction with a marker
``applied|<cell>|<id>`` (create-only) and the check that the window's fence is absent, as the
aggregator files its partials. A delivery finds the marker in any ledger that may hold it and
stops there; a crash before the commit leaves nothing, one after it is found as applied. The marker
keeps a digest of the statement's bytes: other bytes under a key already applied are a conflict
(the exchange never overwrites, so only a bucket changed behind it yields one), refused by name.

Final markers are recorded as they come (``finals|<period>|<cell>``); a cell has reported a period
once its marker stands and every statement it names is applied (``reported``).
"""

from __future__ import annotations

import hashlib

import orjson

from meterline.catalog import Catalog
from meterline.exchange import Exchange
from meterline.periods import Period
from meterline.ports import ConditionFailedError, Expect, Item, PutNew, Store
from meterline.records import key_part, pack_book
from meterline.statements import PREFIX, Address, FinalMarker, Statement, StatementError, read_statement
from meterline.topology import AGGREGATES_TABLE
from meterline.usage import UsageBook

from .ledger import MAX_CHUNK_BYTES, PERIODS_PK, PeriodLedger, fence_sk, partial_prefix, period_pk

TABLE = AGGREGATES_TABLE.name
FINALS = "finals"


class StatementConflictError(StatementError):
    """A statement whose key was already applied with other bytes: the first stands."""


def body_digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def applied_sk(cell: str, statement_id: str) -> str:
    return f"applied|{key_part(cell)}|{key_part(statement_id)}"


def applied_index_pk(period: Period) -> str:
    """Statements of a period applied so far, by cell (written after each commit, for ``reported``)."""
    return f"applied|{period}"


class Ingest:
    def __init__(self, catalog: Catalog, store: Store, exchange: Exchange) -> None:
        self.catalog = catalog
        self.store = store
        self.exchange = exchange
        self.late = 0
        """Statements this instance applied to a later period's ledger (theirs was issued): late usage."""

    def apply(self, key: str, attempts: int = 8) -> bool:
        """Apply the object under ``key``; True if this call applied it, False if it already was."""
        address = Address.of(key)
        body = self.exchange.get(key)
        if body is None:
            raise StatementError(f"{key}: announced, but no such object in the exchange")
        if address.is_final:
            return self.record_final(FinalMarker.from_bytes(key, body))
        statement, book = read_statement(self.catalog, key, body)
        for _ in range(attempts):
            billed_in, window = self.billed_in(statement.period)
            marker = self.applied_marker(statement, billed_in)
            if marker is not None:
                if marker.get("digest", body_digest(body)) != body_digest(body):
                    raise StatementConflictError(
                        f"{key}: applied before with other bytes; the first stands, these are not applied"
                    )
                self.index(statement)
                return False
            try:
                self.commit(statement, book, billed_in, window)
            except ConditionFailedError:
                continue  # a window was sealed, the period issued, or a twin delivery committed first
            self.index(statement)
            return True
        raise ConditionFailedError(0, f"{key}: the ledger kept changing during {attempts} attempts")

    def sweep(self, prefix: str = PREFIX) -> int:
        """Apply every object under ``prefix`` not applied yet (for deliveries that were lost)."""
        return sum(self.apply(key) for key in self.exchange.keys(prefix))

    def billed_in(self, period: Period) -> tuple[Period, int]:
        """The ledger that bills the period's usage now, and its open window."""
        billed_in = period
        while (window := PeriodLedger(self.catalog, self.store, billed_in).open_window()) is None:
            billed_in = billed_in.next()
        return billed_in, window

    def applied_marker(self, statement: Statement, billed_in: Period) -> Item | None:
        """The statement's applied marker, looking in every ledger that may hold it: its period's
        up to ``billed_in``, the one that bills it now."""
        sk = applied_sk(statement.cell, statement.statement_id)
        ledger, last = statement.period, billed_in
        while ledger <= last:
            marker = self.store.get(TABLE, period_pk(ledger), sk)
            if marker is not None:
                return marker
            ledger = ledger.next()
        return None

    def commit(self, statement: Statement, book: UsageBook, billed_in: Period, window: int) -> None:
        """File the statement in ``billed_in``'s open ``window``; the transaction fails if that
        window was sealed since it was read (the caller reads again)."""
        blob = pack_book(book)
        if len(blob) > MAX_CHUNK_BYTES:
            raise StatementError(
                f"{statement.key}: {len(blob)} bytes packed, over a partial's {MAX_CHUNK_BYTES}"
            )
        pk = period_pk(billed_in)
        partial: Item = {
            "pk": pk,
            "sk": f"{partial_prefix(window)}{key_part(statement.cell)}|{statement.statement_id}",
            "book": blob,
            "tenants": len({tenant for tenant, _ in book.states}),
        }
        marker: Item = {
            "pk": pk,
            "sk": applied_sk(statement.cell, statement.statement_id),
            "digest": body_digest(statement.body),
        }
        self.store.transact(
            [
                PutNew(TABLE, partial),
                Expect(TABLE, pk, fence_sk(window), "sealed_at", None),
                PutNew(TABLE, marker),
            ]
        )
        # the periods with usage, for the closer, as the aggregator notes them
        self.store.put(TABLE, {"pk": PERIODS_PK, "sk": str(billed_in)})
        if billed_in != statement.period:
            self.late += 1

    def index(self, statement: Statement) -> None:
        self.store.put(
            TABLE,
            {"pk": applied_index_pk(statement.period), "sk": f"{statement.cell}|{statement.statement_id}"},
        )

    def record_final(self, marker: FinalMarker) -> bool:
        item: Item = {
            "pk": FINALS,
            "sk": f"{marker.period}|{marker.cell}",
            "statements": orjson.dumps(marker.statements),
        }
        return self.store.put_new(TABLE, item) is None

    def reported(self, period: Period) -> set[str]:
        """The cells whose final marker for the period stands, with every statement it names applied."""
        applied: dict[str, set[str]] = {}
        for item in self.store.query(TABLE, applied_index_pk(period)):
            # a statement id is a hex digest (statements.statement_id): the last "|" ends the cell
            cell, statement_id = str(item["sk"]).rsplit("|", 1)
            applied.setdefault(cell, set()).add(statement_id)
        reported = set()
        for item in self.store.query(TABLE, FINALS, f"{period}|"):
            cell = str(item["sk"]).split("|", 1)[1]
            named = set(orjson.loads(item["statements"]))  # type: ignore[arg-type]
            if named <= applied.get(cell, set()):
                reported.add(cell)
        return reported
