"""The statement exchange contract on the in-memory fake."""

from __future__ import annotations

from meterline.adapters.memory import MemoryExchange
from meterline.exchange import Exchange
from tests.contract.exchange_contract import ExchangeContract


class TestMemoryExchange(ExchangeContract):
    def make_exchange(self) -> Exchange:
        return MemoryExchange()
