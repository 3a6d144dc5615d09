"""Instants spelled as the ledgers write them (``datetime.isoformat``), from their text when it is at
hand: a usage item carries its event's time as text, and packing a partial writes the time of every
time-weighted and latest sample back out, ~2 µs an ``isoformat`` (about a third of packing one)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from operator import itemgetter

_KNOWN: dict[int, tuple[datetime, str | None]] = {}
"""By the time object's identity (two equal instants may be spelled with different offsets): the
object itself, kept alive while it is known so that its identity is not reused, and its text."""


def spelled(time: datetime) -> str:
    """``time.isoformat()``."""
    known = _KNOWN.get(id(time))
    if known is not None and known[0] is time and known[1] is not None:
        return known[1]
    return time.isoformat()


_learning = False
_first = itemgetter(0)


@contextlib.contextmanager
def spellings(known: Iterable[tuple[datetime, str | None]] = (), learn: bool = False) -> Iterator[None]:
    """Within the block, ``spelled`` answers these time objects with their text, which must be
    their ``isoformat()`` (None: not known), and (``learn``) those read from a ledger meanwhile."""
    global _learning
    pairs = list(known)  # with None among the texts: ``spelled`` passes over those
    _KNOWN.update(zip(map(id, map(_first, pairs)), pairs, strict=True))
    _learning = learn
    try:
        yield
    finally:
        _KNOWN.clear()
        _learning = False


def learn(time: datetime, text: str) -> None:
    """``time`` was read from ``text``: within a learning ``spellings`` block, know it by that text if
    its shape shows that it is the time's ``isoformat()``."""
    if _learning and isoformat_text(text):
        _KNOWN[id(time)] = (time, text)


def isoformat_text(text: str) -> bool:
    """Whether ``datetime.fromisoformat(text).isoformat()`` is ``text`` itself, as far as its shape
    shows: a time with an offset in ``isoformat``'s own layout (``T``, seconds, no fraction or six
    digits of one that are not all zero, ``±HH:MM`` but not ``-00:00``). What ``isoformat`` writes
    passes; a ``Z``, milliseconds, a space or a basic-format time does not."""
    size = len(text)
    if size == 32:
        if text[19] != "." or text[20:26] == "000000":
            return False
    elif size != 25:
        return False
    return (
        text[4] == "-" and text[7] == "-" and text[10] == "T" and text[13] == ":" and text[16] == ":"
        and text[-3] == ":" and (text[-6] == "+" or (text[-6] == "-" and text[-5:] != "00:00"))
        and text[11:13] != "24" and text[:4] != "0000"
    )  # fmt: skip
