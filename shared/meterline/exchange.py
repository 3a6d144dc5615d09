"""The statement exchange port: immutable objects under text keys, written create-only.

Cells put their statements into the billing home's exchange (on AWS, an S3 bucket); the home
lists and reads them. ``put`` never overwrites: the same bytes again is a no-op, other bytes under
a key that exists are a conflict. One contract suite (``tests/contract/exchange_contract.py``) runs
against every adapter: the in-memory fake and S3 (on a moto server).
"""

from __future__ import annotations

from typing import Protocol


class ExchangeError(Exception):
    """An exchange call failed."""


class ExchangeConflictError(ExchangeError):
    """Other bytes than these stand under the key: nothing was written."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key}: other content already stands under this key; it is never overwritten")
        self.key = key


class Exchange(Protocol):
    def put(self, key: str, body: bytes) -> bool:
        """Create the object; True when this call created it, False when the same bytes already
        stood there. Raises ExchangeConflictError when other bytes do."""

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is none."""

    def keys(self, prefix: str, after: str = "") -> list[str]:
        """Every key starting with ``prefix``, in ascending order, after ``after`` (a cursor: the
        last key already seen)."""
