"""Usage onto ``usage.events``: each line one record, keyed by its subject (the tenant) so that a
tenant's events keep their order in one partition, as SPEC's first-one-stands dedup needs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import orjson
from confluent_kafka import KafkaError, Message, Producer


class FeedError(RuntimeError):
    pass


def subject_of(line: bytes) -> bytes | None:
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    subject = document.get("subject") if isinstance(document, dict) else None
    return subject.encode() if isinstance(subject, str) else None


@contextlib.contextmanager
def signals_surface() -> Iterator[None]:
    """A Ctrl-C or stop signal that lands while librdkafka runs a Python callback (a delivery
    report inside ``poll``) comes back wrapped in a SystemError: raise the signal's own exception,
    so the run stops as interrupted, not as failed."""
    try:
        yield
    except SystemError as error:
        cause = error.__cause__ or error.__context__
        if isinstance(cause, BaseException) and not isinstance(cause, Exception):
            raise cause from None
        raise


class UsageFeed:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
        self.firsts: dict[int, int] = {}
        """Per partition, the first offset the broker acknowledged."""
        self.ends: dict[int, int] = {}
        """Per partition, one past the last offset the broker acknowledged."""
        self.produced = 0
        self.errors: list[str] = []

    def produce(self, values: Iterable[bytes], progress: Callable[[int], None] = lambda n: None) -> None:
        with signals_surface():
            self._produce(values, progress)

    def _produce(self, values: Iterable[bytes], progress: Callable[[int], None]) -> None:
        for count, value in enumerate(values, 1):
            while True:
                try:
                    self.producer.produce(
                        self.topic, value=value, key=subject_of(value), on_delivery=self._acked
                    )
                    break
                except BufferError:  # the local queue is full: let the broker catch up
                    self.producer.poll(0.05)
            if count % 1000 == 0:
                self.producer.poll(0)
                progress(1000)
        if self.producer.flush(30):
            raise FeedError("the broker did not acknowledge every usage record within 30s")
        if self.errors:
            raise FeedError(f"the broker refused usage records: {'; '.join(self.errors[:3])}")
        progress(0)

    def _acked(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.errors.append(error.str())
            return
        self.produced += 1
        partition, offset = message.partition() or 0, message.offset() or 0
        self.ends[partition] = max(self.ends.get(partition, 0), offset + 1)
        self.firsts.setdefault(partition, offset)
