"""meter on Cloud Run functions: Eventarc brings one Pub/Sub message, one Kafka record, per call."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import functions_framework
from cloudevents.http import CloudEvent

from meterline.adapters.gcp_functions import GcpSettings, meter_message
from meterline.bootstrap import Wired

logger = logging.getLogger("meterline.meter")
jobs = Wired(lambda: GcpSettings.from_env(os.environ, Path(__file__).parent))


@functions_framework.cloud_event
def handler(cloud_event: CloudEvent) -> None:
    meter_message(cloud_event["source"], cloud_event.data, jobs().meter, logger)
