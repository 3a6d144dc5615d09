"""The statement exchange contract: what every adapter (the fake, S3) must do, one abstract suite.

A subclass gives ``make_exchange``; this base class is not collected on its own (no ``Test`` prefix).
"""

from __future__ import annotations

import threading

import pytest

from meterline.exchange import Exchange, ExchangeConflictError


class ExchangeContract:
    def make_exchange(self) -> Exchange:
        raise NotImplementedError

    def test_a_put_creates_the_object_and_get_reads_its_bytes_back(self) -> None:
        exchange = self.make_exchange()
        assert exchange.put("statements/aws-us-east-1/2026-11/a.json", b'{"n": 1}') is True
        assert exchange.get("statements/aws-us-east-1/2026-11/a.json") == b'{"n": 1}'

    def test_a_key_never_written_reads_as_none(self) -> None:
        assert self.make_exchange().get("statements/aws-us-east-1/2026-11/missing.json") is None

    def test_the_same_bytes_again_are_a_no_op(self) -> None:
        # GIVEN an object WHEN the same bytes are put again THEN nothing changes, and the caller learns so
        exchange = self.make_exchange()
        exchange.put("k/1.json", b"same")
        assert exchange.put("k/1.json", b"same") is False
        assert exchange.get("k/1.json") == b"same"

    def test_other_bytes_under_an_existing_key_are_a_conflict_that_never_overwrites(self) -> None:
        exchange = self.make_exchange()
        exchange.put("k/1.json", b"first")
        with pytest.raises(ExchangeConflictError, match=r"k/1\.json"):
            exchange.put("k/1.json", b"second")
        assert exchange.get("k/1.json") == b"first"

    def test_keys_lists_a_prefix_in_order_and_only_that_prefix(self) -> None:
        # GIVEN statements of two cells and two periods, put out of order
        exchange = self.make_exchange()
        for key in (
            "statements/gcp-europe-west1/2026-11/b.json",
            "statements/aws-us-east-1/2026-11/b.json",
            "statements/aws-us-east-1/2026-11/a.json",
            "statements/aws-us-east-1/2026-12/a.json",
        ):
            exchange.put(key, key.encode())

        # WHEN one cell's period is listed THEN its keys come back ascending, nothing else
        assert exchange.keys("statements/aws-us-east-1/2026-11/") == [
            "statements/aws-us-east-1/2026-11/a.json",
            "statements/aws-us-east-1/2026-11/b.json",
        ]
        assert exchange.keys("statements/azure-eastus/") == []

    def test_keys_after_a_cursor_are_those_that_sort_after_it(self) -> None:
        exchange = self.make_exchange()
        names = [f"statements/local/2026-11/{number:04d}.json" for number in range(7)]
        for name in names:
            exchange.put(name, b"x")
        assert exchange.keys("statements/", after=names[2]) == names[3:]
        assert exchange.keys("statements/", after=names[-1]) == []

    def test_listing_pages_through_more_keys_than_one_answer_holds(self) -> None:
        # GIVEN more objects than S3 returns in one list page (1,000)
        exchange = self.make_exchange()
        names = [f"statements/local/2026-11/{number:05d}.json" for number in range(1_005)]
        for name in names:
            exchange.put(name, b"")
        # WHEN listed THEN every key comes back once, in order
        assert exchange.keys("statements/local/") == names

    def test_two_writers_racing_for_one_key_leave_one_object_and_one_creator(self) -> None:
        # GIVEN eight writers putting the same bytes under one key at once
        exchange = self.make_exchange()
        created: list[bool] = []
        barrier = threading.Barrier(8)

        def write() -> None:
            barrier.wait()
            created.append(exchange.put("statements/local/2026-11/raced.json", b"body"))

        threads = [threading.Thread(target=write) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        # THEN one of them created it; the others saw their bytes already standing
        assert sorted(created) == [False] * 7 + [True]
        assert exchange.get("statements/local/2026-11/raced.json") == b"body"
