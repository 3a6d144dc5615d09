"""A gauge in the aggregates ledger: rollups keep one run per hour of it and archive its samples;
a sample arriving inside an archived hour is billed exactly from the archive, even past a roller
that died writing it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from meterline.adapters.memory import MemoryPublisher
from meterline.offline import rate_lines
from meterline.periods import Period
from meterline.pipeline import ledger as ledger_module
from meterline.pipeline.cell import Cell
from meterline.pipeline.ledger import PeriodLedger
from meterline.ports import Item
from meterline.records import bucket_of, unpack_book
from meterline.topology import AGGREGATES_TABLE

from .test_cell import CATALOG, deliver, stream_vs_batch

NOVEMBER = Period(2026, 11)
START = datetime(2026, 11, 3, tzinfo=UTC)
CLOSE_ALL = datetime(2027, 1, 1, tzinfo=UTC)


def gauge(number: int, at: datetime, cku: int) -> bytes:
    event = {
        "specversion": "1.0",
        "id": f"g{number}",
        "source": "cell/gauge",
        "type": "kafka.status",
        "subject": "org-1",
        "time": at.isoformat().replace("+00:00", "Z"),
        "data": {"cku": cku, "partitions": number % 50},
    }
    return orjson.dumps(event)


def every(seconds: int, hours: int, first: int = 0, start: datetime = START) -> list[bytes]:
    """A sample every ``seconds`` for ``hours`` from ``start``, its value changing each half hour."""
    return [
        gauge(first + n, start + timedelta(seconds=n * seconds), 1 + (n * seconds // 1800) % 3)
        for n in range(hours * 3600 // seconds)
    ]


def archive_reads(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The archived hours read back (slow paths), as the ledger logs them."""
    return [str(record.args[0]) for record in caplog.records if record.msg.startswith("slow path")]  # type: ignore[index]


def rollup_of(cell: Cell) -> list[list[object]]:
    """The stored form of org-1's cku_hours state in its bucket's rollup."""
    ledger = PeriodLedger(CATALOG, cell.store, NOVEMBER)
    head = ledger.head()
    bucket = bucket_of("org-1")
    rollup = head.rollups[bucket]
    prefix = f"rollup|{bucket:02d}|{rollup.window:06d}|"
    chunks = cell.store.query(AGGREGATES_TABLE.name, "period|2026-11", prefix)
    book = unpack_book(CATALOG, b"".join(bytes(c["book"]) for c in chunks))  # type: ignore[arg-type]
    stored: list[list[object]] = book.states_of("org-1", NOVEMBER)[("cku_hours", ())].to_json()
    return stored


def test_a_rollup_keeps_one_run_per_hour_of_a_gauge_however_often_it_is_sampled() -> None:
    # GIVEN six hours of a gauge sampled every 10 s, aggregated in small batches and rated as they come
    cell = Cell(CATALOG, MemoryPublisher())
    lines = every(10, hours=6)
    deliver(cell, lines, first_offset=0, batch=20)
    # THEN the rollup holds the gauge as one archived run per hour rolled up, not its samples
    head = PeriodLedger(CATALOG, cell.store, NOVEMBER).head()
    assert head.window >= 2
    runs = rollup_of(cell)
    assert len(runs) <= 6 and all(len(run) == 4 for run in runs)  # [first, last, count, area]
    assert sum(run[2] for run in runs) > 1000
    # AND the invoice is `meterline rate`'s
    cell.close(CLOSE_ALL)
    assert stream_vs_batch(CATALOG, cell.store, lines, "2026-11", "2026-11") == []


def test_a_sample_inside_an_archived_hour_is_billed_exactly_from_the_archive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN four hours of a gauge every 10 s, rolled up as it came
    cell = Cell(CATALOG, MemoryPublisher())
    lines = every(10, hours=4)
    deliver(cell, lines, first_offset=0, batch=20)
    assert archive_reads(caplog) == []
    # WHEN a sample from another source lands inside the first hour (00:12:34, between two samples)
    caplog.set_level(logging.INFO, logger=ledger_module.__name__)
    late = gauge(99_999, START + timedelta(minutes=12, seconds=34), 4)
    deliver(cell, [late], first_offset=len(lines), batch=1)
    # THEN rating read that one hour back from the archive, and logged it
    assert archive_reads(caplog) == ["2026-11-03T00"]
    # AND, more samples later, the closed invoice is `meterline rate`'s on every line
    more = every(10, hours=1, first=len(lines), start=START + timedelta(hours=10))
    deliver(cell, more, first_offset=len(lines) + 1, batch=20)
    cell.close(CLOSE_ALL)
    assert stream_vs_batch(CATALOG, cell.store, [*lines, late, *more], "2026-11", "2026-11") == []


def test_an_archive_piece_a_roller_left_incomplete_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN archive pieces cut into many small chunks, and no rate job: windows are sealed by hand
    monkeypatch.setattr(ledger_module, "MAX_CHUNK_BYTES", 300)
    cell = Cell(CATALOG, MemoryPublisher())
    cell.charges.run = lambda items, now=None: 0  # type: ignore[method-assign]
    ledger = PeriodLedger(CATALOG, cell.store, NOVEMBER)
    lines = every(10, hours=2)
    half = len(lines) // 2
    deliver(cell, lines[:half], first_offset=0, batch=50)
    ledger.seal(START)
    # WHEN a roller dies after the first chunk of an archive piece
    real_put = cell.store.put
    archived: list[str] = []

    def put(table: str, item: Item) -> None:
        if str(item["sk"]).startswith("archive|"):
            archived.append(str(item["sk"]))
            if len(archived) == 2:
                raise ConnectionError("the roller died writing the archive")
        real_put(table, item)

    cell.store.put = put  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        ledger.roll_up()
    cell.store.put = real_put  # type: ignore[method-assign]
    # AND more usage is sealed in a later window before the next roller folds both windows
    deliver(cell, lines[half:], first_offset=half, batch=50)
    ledger.seal(START)
    assert ledger.roll_up()
    died_in = archived[0].rsplit("|", 1)[0]
    (left,) = cell.store.query(AGGREGATES_TABLE.name, "period|2026-11", died_in)  # one chunk of several
    assert int(left["chunks"]) > 1
    # AND a late sample then lands inside an archived hour
    late = gauge(99_999, START + timedelta(minutes=42, seconds=1), 5)
    deliver(cell, [late], first_offset=len(lines), batch=1)
    book = ledger.book()
    # THEN the hour read back skips the dead roller's piece, and the usage is exactly everyone's
    assert ledger.archive_reads == 1
    expected = rate_lines(CATALOG, [*lines, late], NOVEMBER)
    quantity = book.quantities(CATALOG, "org-1", NOVEMBER)[("cku_hours", ())]
    (invoice,) = [invoice for invoice in expected.invoices if invoice.tenant == "org-1"]
    assert quantity == next(line.quantity for line in invoice.lines if line.meter == "cku_hours")
