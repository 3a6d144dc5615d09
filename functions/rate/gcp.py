"""rate on Cloud Run functions: a Firestore document-created event per new aggregates document."""

from __future__ import annotations

import os
from pathlib import Path

import functions_framework
from cloudevents.http import CloudEvent

from meterline.adapters.gcp_functions import GcpSettings, rate_document
from meterline.bootstrap import Wired

jobs = Wired(lambda: GcpSettings.from_env(os.environ, Path(__file__).parent))


@functions_framework.cloud_event
def handler(cloud_event: CloudEvent) -> None:
    rate_document(cloud_event.data, jobs())
