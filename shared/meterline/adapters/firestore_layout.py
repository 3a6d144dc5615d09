"""How the store port lies on Firestore, without the client library: the names and the index that
the adapter (``firestore.py``) relies on and that infra creates (collections named in TTL fields,
composite indexes and Eventarc filters).
"""

from __future__ import annotations

QUERY_INDEX: tuple[tuple[str, str], ...] = (("pk", "ASCENDING"), ("sk", "ASCENDING"))
"""The composite index ``FirestoreStore.query`` needs on a collection it queries: equality on
``pk``, a range on ``sk`` and ordering by it. The emulator does without; a database does not."""


def collection_name(prefix: str, table: str) -> str:
    """The collection that holds a ledger table: the function's ``METERLINE_TABLE_PREFIX`` + table."""
    return f"{prefix}{table}"
