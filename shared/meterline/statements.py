"""Statements (SPEC §8): what a cell tells the billing home about its usage.

A statement is one cell partial's usage of one period: mergeable aggregation states of the tenants
one aggregation batch touched, immutable, in a canonical JSON encoding. Its id is a digest of the
cell, the partial's ledger key and the period, so publishing the same partial again gives the same
key and the same bytes, and the exchange's create-only write makes the repeat a no-op. Keys:

- ``statements/<cell>/<period>/<statement_id>.json`` — a statement;
- ``statements/<cell>/<period>/final.json`` — the cell's final marker for the period: every
  statement it published for it before the period's ``end + grace``, by id. A statement of the
  period published after it is late usage.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from meterline.catalog import Catalog
from meterline.periods import Period, PeriodError
from meterline.usage import UsageBook

PREFIX = "statements/"
FINAL = "final"
FORMAT = 1
_CELL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ID = re.compile(r"[0-9a-f]{32}")


class StatementError(ValueError):
    """An object of the exchange that is not a statement this home can apply, with its key."""


def period_prefix(cell: str, period: Period) -> str:
    return f"{PREFIX}{cell}/{period}/"


def statement_key(cell: str, period: Period, statement_id: str) -> str:
    return f"{period_prefix(cell, period)}{statement_id}.json"


def final_key(cell: str, period: Period) -> str:
    return statement_key(cell, period, FINAL)


@dataclass(frozen=True, slots=True)
class Address:
    """Where a key of the exchange points: a cell's statement (or final marker) for a period."""

    cell: str
    period: Period
    name: str
    """The statement's id, or ``final``."""

    @property
    def is_final(self) -> bool:
        return self.name == FINAL

    @classmethod
    def of(cls, key: str) -> Address:
        parts = key.removeprefix(PREFIX).split("/")
        if not key.startswith(PREFIX) or len(parts) != 3 or not parts[2].endswith(".json"):
            raise StatementError(f"{key}: not a statement key (statements/<cell>/<period>/<id>.json)")
        cell, name = parts[0], parts[2].removesuffix(".json")
        if not _CELL.fullmatch(cell):
            raise StatementError(f"{key}: {cell!r} is not a cell name (<cloud>-<region>)")
        if name != FINAL and not _ID.fullmatch(name):
            raise StatementError(f"{key}: {name!r} is not a statement id (32 hex digits) nor {FINAL}")
        try:
            period = Period.parse(parts[1])
        except PeriodError:
            raise StatementError(f"{key}: {parts[1]!r} is not a period (YYYY-MM)") from None
        return cls(cell, period, name)


@dataclass(frozen=True, slots=True)
class Statement:
    cell: str
    period: Period
    statement_id: str
    body: bytes

    @property
    def key(self) -> str:
        return statement_key(self.cell, self.period, self.statement_id)


def statement_id(cell: str, source: str, period: Period) -> str:
    return hashlib.blake2b(f"{cell}\x00{source}\x00{period}".encode(), digest_size=16).hexdigest()


def statements_of(cell: str, source: str, book: UsageBook) -> list[Statement]:
    """A partial's statements: one per period its usage is of (almost always one). ``source`` is
    the partial's key in the cell's ledger, unique and stable."""
    entries = book.to_json()
    periods = sorted({Period.parse(entry["period"]) for entry in entries})
    statements = []
    for period in periods:
        identity = statement_id(cell, source, period)
        usage = sorted(
            (_canonical(entry) for entry in entries if entry["period"] == str(period)),
            key=lambda entry: (entry["tenant"], entry.get("days", [])),
        )
        document = {
            "format": FORMAT,
            "cell": cell,
            "period": str(period),
            "statement_id": identity,
            "source": source,
            "usage": usage,
        }
        statements.append(
            Statement(cell, period, identity, orjson.dumps(document, option=orjson.OPT_SORT_KEYS))
        )
    return statements


def _canonical(entry: dict[str, Any]) -> dict[str, Any]:
    states = sorted(entry["states"], key=lambda state: (state["meter"], orjson.dumps(state["group"])))
    return {**entry, "states": states}


def read_statement(catalog: Catalog, key: str, body: bytes) -> tuple[Statement, UsageBook]:
    """The statement under ``key`` and its usage, checked against what its key says."""
    address = Address.of(key)
    try:
        document = orjson.loads(body)
        if document.get("format") != FORMAT:
            raise StatementError(f"{key}: format {document.get('format')!r}, this home reads {FORMAT}")
        if (document["cell"], document["period"], document["statement_id"]) != (
            address.cell,
            str(address.period),
            address.name,
        ):
            raise StatementError(f"{key}: its content names another cell, period or id than its key")
        usage = document["usage"]
        if any(entry["period"] != document["period"] for entry in usage):
            raise StatementError(f"{key}: holds usage of another period than {document['period']}")
        book = UsageBook.from_json(catalog, usage)
    except StatementError:
        raise
    except KeyError as error:
        raise StatementError(f"{key}: names {error} that the home's catalog or the format lacks") from None
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError) as error:
        raise StatementError(f"{key}: not a statement ({error})") from None
    return Statement(address.cell, address.period, address.name, body), book


@dataclass(frozen=True, slots=True)
class FinalMarker:
    """A cell's last word on a period: the ids of every statement it published for it in time."""

    cell: str
    period: Period
    statements: tuple[str, ...]
    """Sorted."""

    @property
    def key(self) -> str:
        return final_key(self.cell, self.period)

    def to_bytes(self) -> bytes:
        document = {
            "format": FORMAT,
            "cell": self.cell,
            "period": str(self.period),
            "statements": self.statements,
        }
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_bytes(cls, key: str, body: bytes) -> FinalMarker:
        address = Address.of(key)
        try:
            document = orjson.loads(body)
            statements = tuple(sorted(str(name) for name in document["statements"]))
        except (orjson.JSONDecodeError, KeyError, TypeError) as error:
            raise StatementError(f"{key}: not a final marker ({error})") from None
        return cls(address.cell, address.period, statements)
