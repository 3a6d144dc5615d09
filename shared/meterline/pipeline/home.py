"""The billing home's close (SPEC §8): a period is issued once every cell reported it final, or at
its deadline, the silent cells logged for the alarm. ``deployment.Deployment`` drives cells and a
home in process for the tests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

import orjson

from meterline.catalog import Catalog
from meterline.deadline import Readiness, readiness
from meterline.periods import Period

from .close import Closer
from .ingest import Ingest
from .ledger import closed_record

log = logging.getLogger("meterline.home")


class Home:
    """The billing home's close: ``Closer`` deciding, period by period, with ``readiness``."""

    def __init__(self, catalog: Catalog, closer: Closer, ingest: Ingest, cells: Sequence[str]) -> None:
        self.catalog = catalog
        self.closer = closer
        self.ingest = ingest
        self.cells = tuple(cells)

    def amendments(self, period: Period) -> int:
        """How many amendments the close of ``period`` issued (its close record says)."""
        record = closed_record(self.closer.store, period)
        return int(str(record.get("amendments", 0))) if record else 0

    def receive(self, keys: Iterable[str]) -> int:
        """Apply the announced objects; return how many statements this applied."""
        return sum(self.ingest.apply(key) for key in keys)

    def close(self, now: datetime) -> list[Readiness]:
        """Issue each period past its grace, in order, once every cell reported it or its cell wait
        is over; the silent cells of a period past its grace are logged as ``silent_cells``."""
        found = []
        for period in self.closer.due(now):
            ready = readiness(period, now, self.catalog.billing, self.cells, self.ingest.reported(period))
            found.append(ready)
            if ready.silent:
                log.warning(silent_cells(period, ready))
            if not ready.issue:
                break  # a period's grants and carried values come from the one before: in order
            self.closer.close(period, now)
        return found


def silent_cells(period: Period, ready: Readiness) -> str:
    """The log line the infra's alarm counts: one JSON object per period with silent cells."""
    document = {
        "metric": "silent_cells",
        "period": str(period),
        "count": len(ready.silent),
        "cells": ready.silent,
        "issued_without_them": ready.issue,
    }
    return orjson.dumps(document).decode()
