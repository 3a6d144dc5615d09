"""The demo's usage feed: a signal that lands inside librdkafka's callbacks stops the run as
interrupted (exit 130 or 128 + the signal), not as a failure."""

from __future__ import annotations

from typing import Any

import pytest

from meterline.local.feed import UsageFeed
from meterline.local.process import StoppedError


class _WrappingProducer:
    """What confluent-kafka does when a signal's exception is raised in a delivery report during
    ``poll``: the C call returns with the exception set, and Python wraps it in a SystemError."""

    def __init__(self, raised: BaseException) -> None:
        self.raised = raised

    def produce(self, *args: Any, **kwargs: Any) -> None:
        try:
            raise self.raised
        except BaseException as error:
            raise SystemError("<built-in method produce> returned a result with an exception set") from error


def _feed(raised: BaseException) -> UsageFeed:
    feed = UsageFeed.__new__(UsageFeed)
    feed.topic = "usage.events"
    feed.producer = _WrappingProducer(raised)  # type: ignore[assignment]
    return feed


@pytest.mark.parametrize("signal_error", [KeyboardInterrupt(), StoppedError(15)])
def test_a_signal_inside_the_producer_surfaces_as_itself(signal_error: BaseException) -> None:
    # GIVEN a producer whose callback was interrupted by Ctrl-C or a stop signal
    feed = _feed(signal_error)
    # WHEN usage is produced THEN the signal's own exception comes out, not a SystemError
    with pytest.raises(type(signal_error)):
        feed.produce([b'{"subject": "org-a"}'])


def test_a_system_error_of_another_cause_stays_one() -> None:
    # GIVEN a producer failing with an ordinary error underneath
    feed = _feed(ValueError("bad"))
    # WHEN usage is produced THEN it is the SystemError, as it was
    with pytest.raises(SystemError):
        feed.produce([b'{"subject": "org-a"}'])
