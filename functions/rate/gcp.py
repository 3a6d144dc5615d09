"""rate on Cloud Run functions: a Firestore document-created event per new aggregates document."""

from __future__ import annotations

import os
from pathlib import Path

import functions_framework
from cloudevents.http import CloudEvent

from meterline.adapters.gcp_functions import GcpSettings, created_document
from meterline.bootstrap import Wired
from meterline.pipeline.ledger import is_partial

jobs = Wired(lambda: GcpSettings.from_env(os.environ, Path(__file__).parent))


@functions_framework.cloud_event
def handler(cloud_event: CloudEvent) -> None:
    # Markers, fences and indexes land in the same collection; only partial states are rated.
    document = created_document(cloud_event.data)
    if is_partial(document.item):
        cell = jobs()
        cell.charges.run([document.item], cell.clock())
