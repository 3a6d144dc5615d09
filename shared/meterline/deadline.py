"""When the billing home may issue a period (SPEC §8): once every cell has reported it final, or at
``end + grace + billing.cell_wait`` whatever the silent cells say; never before ``end + grace``."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from meterline.catalog import Billing
from meterline.periods import Period
from meterline.pipeline.close import may_issue


@dataclass(frozen=True, slots=True)
class Readiness:
    period: Period
    issue: bool
    """The period may be issued now."""
    silent: tuple[str, ...]
    """The cells that have not reported the period final (sorted): what the ``silent_cells``
    alarm names once the period is past its grace."""


def readiness(
    period: Period, now: datetime, billing: Billing, cells: Collection[str], reported: Collection[str]
) -> Readiness:
    """The close's ``may_issue`` for a billing home: past the grace, once no cell is silent, or
    anyway once the cell wait is over too."""
    silent = tuple(sorted(set(cells) - set(reported)))
    if not may_issue(period, billing.grace, now):
        return Readiness(period, False, silent)
    deadline = may_issue(period, billing.grace + billing.cell_wait, now)
    return Readiness(period, not silent or deadline, silent)
