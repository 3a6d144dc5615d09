"""The store contract on the in-memory fake."""

from __future__ import annotations

from meterline.adapters.memory import MemoryStore
from meterline.ports import Store
from meterline.topology import TABLES
from tests.contract.store_contract import StoreContract


class TestMemoryStore(StoreContract):
    def make_store(self) -> Store:
        return MemoryStore([table.name for table in TABLES])
