"""Billing periods: calendar months in UTC."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

_PERIOD = re.compile(r"(\d{4})-(\d{2})", re.ASCII)


class PeriodError(ValueError):
    pass


@dataclass(frozen=True, order=True, slots=True)
class Period:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        known = _PARSED.get(text) if type(text) is str else None
        if known is not None:
            return known  # ledgers name the same few months in every entry they hold
        match = _PERIOD.fullmatch(text)
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise PeriodError(f"period {text!r} is not a month written YYYY-MM")
        period = _month(int(match.group(1)), int(match.group(2)))
        if not _FIRST <= period <= _LAST:
            raise PeriodError(f"period {text!r} is outside {_FIRST}..{_LAST}")
        if len(_PARSED) < _PARSED_KEPT:
            _PARSED[text] = period
        return period

    def __hash__(self) -> int:
        # periods key many dicts: the generated hash builds and hashes a tuple each time
        return self.year * 12 + self.month

    @classmethod
    def of(cls, moment: datetime) -> Period:
        return _month(moment.year, moment.month)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive end: the first instant of the next period."""
        return self.next().start

    def next(self) -> Period:
        # the one object of its month, like ``of``: billing's caches of a period find it by identity
        return _month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Period:
        return _month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


_month = cache(Period)
"""One object per month read or taken from a time: the dicts periods key (and the caches of
functions of a period) then find their keys by identity, without comparing fields."""
_PARSED: dict[str, Period] = {}
_PARSED_KEPT = 4096
"""Valid texts only, and at most this many: a cache no input can grow without bound."""
_FIRST = Period(1, 1)
_LAST = Period(9999, 11)
"""The last month whose end (the next month's first instant) a datetime can hold."""
