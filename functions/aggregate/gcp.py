"""aggregate on Cloud Run functions: Cloud Scheduler calls it over HTTP every minute, and it drains
``usage.events`` itself in its own consumer group, a batch per partition and one aggregator run per
batch (see meterline.adapters.kafka_drain for why that is exactly-once in effect).

HTTP rather than a Pub/Sub trigger: the schedule needs no topic or subscription, a tick refused
while the one instance is still busy is simply dropped (the next minute goes on from the committed
offsets, where a Pub/Sub message would be redelivered late), and the answer says what was drained.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import flask
import functions_framework

from meterline.adapters.gcp_functions import GcpSettings, drain_usage
from meterline.bootstrap import Wired

logger = logging.getLogger("meterline.aggregate")
jobs = Wired(lambda: GcpSettings.from_env(os.environ, Path(__file__).parent))


@functions_framework.http
def handler(request: flask.Request) -> tuple[dict[str, Any], int]:
    # The request carries nothing: the committed offsets say where to go on.
    return drain_usage(jobs(), logger).to_json(), 200
