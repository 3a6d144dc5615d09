"""close on Cloud Run functions: Cloud Scheduler calls it over HTTP (the body carries nothing)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import flask
import functions_framework

from meterline.adapters.gcp_functions import GcpSettings
from meterline.bootstrap import Wired

jobs = Wired(lambda: GcpSettings.from_env(os.environ, Path(__file__).parent))


@functions_framework.http
def handler(request: flask.Request) -> tuple[dict[str, Any], int]:
    # As of the clock, never of the request: a body cannot close a period before its time.
    cell = jobs()
    return {"closed": [str(period) for period in cell.closer.run(cell.clock())]}, 200
