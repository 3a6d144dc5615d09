"""publish on Cloud Run functions: Cloud Scheduler calls it over HTTP (the body carries nothing); it
writes to the billing home's bucket as the home's role for this cell, by the function's Google ID
token (no key leaves AWS or GCP)."""

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
    # As of the clock, never of the request: a body cannot report a period final before its time.
    cell = jobs()
    return cell.publish.run_schedule(cell.clock()).to_json(), 200
