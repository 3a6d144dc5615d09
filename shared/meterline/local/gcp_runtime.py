"""Cloud Run functions, locally: the real ``functions/<job>/gcp.py`` entrypoints, each handed the
jobs the composition root builds from the cell's settings (``bootstrap``), called with the
CloudEvents (or the HTTP request) their triggers deliver.

Each instance of an event-driven function is a process of its own (gcp_instance.py), as on Cloud
Run: its module, clients and CPU are its own, and it takes one event at a time. close, called
twice a run over HTTP, runs in this process.

Departures from Google Cloud: Managed Kafka only speaks SASL over TLS, the local broker neither,
so the functions run with ``kafka_auth`` none (plaintext clients); and aggregate's schedule is
compressed from every minute to every second, its run's budget from 40 s to ``DRAIN_SECONDS``.
"""

from __future__ import annotations

import base64
import gc
import threading
import time
import warnings
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from meterline.adapters.gcp_functions import GcpSettings
from meterline.bootstrap import bootstrap
from meterline.ports import Clock
from meterline.settings import KafkaAuth

from .runtime import FUNCTIONS_ROOT, Invocations, counted, load_function

PROJECT = "meterline-demo"
DATABASE = f"projects/{PROJECT}/databases/(default)"
PUBSUB_TOPIC = f"projects/{PROJECT}/topics/usage-events"
DRAIN_SECONDS = 5.0


def quiet_google_imports() -> None:
    # google.api_core warns on every import that Python 3.11 support ends in 2027
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")


def local_settings(catalog: Path, prefix: str, kafka_bootstrap: str, firestore_host: str) -> GcpSettings:
    """The functions' settings in a local cell: a plaintext broker, the emulator, and aggregate's
    consumer group this run's own (a broker passed with --kafka may know "aggregate")."""
    return GcpSettings(
        table_prefix=prefix,
        catalog=catalog.resolve(),
        kafka_bootstrap=kafka_bootstrap,
        kafka_auth=KafkaAuth.NONE,
        project=PROJECT,
        consumer_group=f"{prefix}aggregate",
        drain_seconds=DRAIN_SECONDS,
        emulator_host=firestore_host,
    )


def load_entrypoint(job: str, instance: int, root: Path = FUNCTIONS_ROOT) -> ModuleType:
    return load_function(
        root / job / "gcp.py", f"meterline_local_{job}_gcp_{instance}", f"the {job} function"
    )


class GcpRuntime:
    """The functions of one cell. ``call`` raises what the entrypoint raised."""

    def __init__(self, settings: GcpSettings, instances: Mapping[str, int], clock: Clock) -> None:
        """``instances``: per event-driven job, how many instances deliveries may run on at once.
        Each instance bootstraps its jobs from ``settings``; close, in this process, reads ``clock``."""
        from .gcp_instance import InstanceProcess

        quiet_google_imports()
        self.instances: dict[str, list[InstanceProcess]] = {}
        try:
            for job, count in instances.items():
                self.instances[job] = [InstanceProcess(job, index, settings) for index in range(count)]
            self.close = load_entrypoint("close", 0)
            self.close.jobs.use(bootstrap(settings, clock=clock))
        except BaseException:
            self.shutdown()
            raise
        self.stats: dict[str, Invocations] = {job: Invocations() for job in (*instances, "close")}
        self._lock = threading.Lock()

    def deliver(self, job: str, instance: int, event: Any) -> None:
        """A CloudEvent to one instance of ``job``."""
        with self._counted(job):
            self.instances[job][instance].call(dict(event.get_attributes()), event.data)

    def post(self, job: str, instance: int, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """An HTTP call (Cloud Scheduler's) to one instance of ``job``."""
        with self._counted(job):
            return self.instances[job][instance].post(body)

    def call_close(self) -> tuple[dict[str, Any], int]:
        """Cloud Scheduler's HTTP call: the response body and status."""
        with self._counted("close"):
            answer: tuple[dict[str, Any], int] = self.close.handler(http_request({}))
            return answer

    def _counted(self, job: str) -> AbstractContextManager[None]:
        return counted(self.stats[job], self._lock)

    def processes(self) -> list[Any]:
        return [instance for instances in self.instances.values() for instance in instances]

    def shutdown(self) -> None:
        """Stop the instances and let go of close's clients while the servers still run."""
        for instance in self.processes():
            instance.stop()
        self.instances.clear()
        close = getattr(self, "close", None)
        if close is not None:
            close.jobs.release()
        gc.collect()


# What the triggers deliver ------------------------------------------------------------------------


def pubsub_push_event(
    topic: str, partition: int, offset: int, key: bytes | None, value: bytes, timestamp_ms: int
) -> Any:
    """A Kafka record as the Kafka Connect Pub/Sub sink (``metadata.publish=true``) publishes it,
    pushed by Eventarc as a ``messagePublished`` CloudEvent."""
    from cloudevents.http import CloudEvent

    message_id = f"{partition}{offset:012d}"
    published = _rfc3339(timestamp_ms / 1000 if timestamp_ms > 0 else time.time())
    attributes = {"kafka.topic": topic, "kafka.partition": str(partition), "kafka.offset": str(offset)}
    if key is not None:
        attributes["key"] = key.decode("utf-8", "replace")
    data = {
        "message": {
            "data": base64.b64encode(value).decode(),
            "attributes": attributes,
            "messageId": message_id,
            "publishTime": published,
        },
        "subscription": f"projects/{PROJECT}/subscriptions/eventarc-meter",
    }
    return CloudEvent(
        {
            "specversion": "1.0",
            "id": message_id,
            "source": f"//pubsub.googleapis.com/{PUBSUB_TOPIC}",
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "datacontenttype": "application/json",
            "time": published,
        },
        data,
    )


def document_created_event(name: str, fields: Mapping[str, Any], created: datetime) -> Any:
    """A Firestore ``document.v1.created`` CloudEvent, its data ``DocumentEventData`` in protobuf."""
    from cloudevents.http import CloudEvent
    from google.events.cloud.firestore import Document, DocumentEventData

    values = {field: _value(field, value) for field, value in fields.items()}
    data = DocumentEventData(
        value=Document(name=name, fields=values, create_time=created, update_time=created)
    )
    path = name.split("/documents/", 1)[1]
    return CloudEvent(
        {
            "specversion": "1.0",
            "id": f"{path}@{created.timestamp():.6f}",
            "source": f"//firestore.googleapis.com/{DATABASE}",
            "type": "google.cloud.firestore.document.v1.created",
            "datacontenttype": "application/protobuf",
            "subject": f"documents/{path}",
            "time": _rfc3339(created.timestamp()),
            "database": "(default)",
            "namespace": "(default)",
            "document": path,
        },
        DocumentEventData.serialize(data),
    )


def _value(field: str, value: Any) -> Any:
    from google.events.cloud.firestore import Value

    if isinstance(value, bool):
        return Value(boolean_value=value)
    if isinstance(value, int):
        return Value(integer_value=value)
    if isinstance(value, str):
        return Value(string_value=value)
    if isinstance(value, bytes):
        return Value(bytes_value=value)
    if isinstance(value, datetime):
        return Value(timestamp_value=value)
    raise TypeError(f"field {field!r}: a {type(value).__name__} is not a value the ledgers store")


def http_request(body: dict[str, Any]) -> Any:
    """A POST with a JSON body, as Cloud Scheduler sends it."""
    import flask
    from werkzeug.test import EnvironBuilder

    return flask.Request(EnvironBuilder(method="POST", json=body).get_environ())


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
