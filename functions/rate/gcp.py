"""rate on Cloud Run functions: a Firestore document-created event per new aggregates document."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import functions_framework
from cloudevents.http import CloudEvent

from meterline.adapters.gcp_functions import Settings, Wiring, created_document
from meterline.pipeline.ledger import is_partial
from meterline.pipeline.rate import RunningCharges


@cache
def running_charges() -> RunningCharges:
    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    return RunningCharges(wiring.catalog, wiring.store, wiring.publisher)


@functions_framework.cloud_event
def handler(cloud_event: CloudEvent) -> None:
    # Markers, fences and indexes land in the same collection; only partial states are rated.
    document = created_document(cloud_event.data)
    if is_partial(document.item):
        running_charges().run([document.item])
