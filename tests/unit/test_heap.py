"""The collector pause the aggregate and rate jobs run under."""

from __future__ import annotations

import gc

import pytest

from meterline.heap import collector_paused


def test_the_collector_is_off_in_the_block_and_on_again_after_it_even_when_the_block_fails() -> None:
    # GIVEN the cyclic collector on
    assert gc.isenabled()
    # WHEN a block runs paused, and raises
    with pytest.raises(RuntimeError), collector_paused():
        # THEN the collector is off inside it
        assert not gc.isenabled()
        raise RuntimeError("the job failed")
    # AND on again after it
    assert gc.isenabled()


def test_a_collector_someone_else_turned_off_stays_off_after_the_block() -> None:
    # GIVEN the collector turned off outside the block (as the catalog loader does)
    gc.disable()
    try:
        # WHEN a block runs paused
        with collector_paused():
            pass
        # THEN it does not turn the collector on behind the caller's back
        assert not gc.isenabled()
    finally:
        gc.enable()
