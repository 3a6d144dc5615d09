"""The cyclic garbage collector, paused while a job builds trees of objects it cannot free."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off (as it was after). For work that decodes and
    folds acyclic data (JSON documents, states of usage): every pass over the growing heap finds
    nothing to free; reference counting frees it all the same. Cycles made meanwhile are found by
    the next pass after the block."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
