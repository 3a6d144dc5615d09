"""aggregate on Cloud Run functions: a Firestore document-created event per new usage document."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import functions_framework
from cloudevents.http import CloudEvent

from meterline.adapters.gcp_functions import Settings, Wiring, created_document
from meterline.pipeline.aggregate import Aggregator, StreamRecord
from meterline.records import AcceptedUsage


@cache
def aggregator() -> Aggregator:
    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    return Aggregator(wiring.catalog, wiring.store)


@functions_framework.cloud_event
def handler(cloud_event: CloudEvent) -> None:
    # A batch of one, keyed by the document's stable sequence: a redelivered event finds its
    # marker and applies nothing; any store error raises and Eventarc delivers the event again.
    document = created_document(cloud_event.data)
    if document.item["sk"] == "event":
        aggregator().run([StreamRecord(document.sequence, AcceptedUsage.from_item(document.item))])
