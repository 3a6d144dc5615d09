"""publish on Cloud Run functions: Cloud Scheduler calls it over HTTP, optionally with {"now": ...};
it writes to the billing home's bucket as the home's role for this cell, by the function's Google
ID token (no key leaves AWS or GCP)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import flask
import functions_framework

from meterline.adapters.gcp_functions import Settings, Wiring, google_id_token
from meterline.adapters.s3 import HomeSettings, home_exchange
from meterline.pipeline.publish import StatementPublisher


@cache
def publisher() -> StatementPublisher:
    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    home = HomeSettings.from_env(os.environ)
    token = google_id_token(home.audience or "sts.amazonaws.com")
    return StatementPublisher(wiring.catalog, wiring.store, home_exchange(home, token), home.cell)


@functions_framework.http
def handler(request: flask.Request) -> tuple[dict[str, Any], int]:
    # {"now": "..."} publishes as of another instant (a replay); an empty body publishes as of now.
    # A store or bucket failure raises (500): the next tick goes on, what was put stands.
    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict):
        return {"error": 'the request body must be a JSON object such as {"now": "..."}'}, 400
    try:
        now = datetime.fromisoformat(body["now"]) if body.get("now") else datetime.now(UTC)
    except (TypeError, ValueError):
        return {"error": f"now must be an ISO 8601 time with an offset, not {body['now']!r}"}, 400
    if now.tzinfo is None:
        return {"error": f"now must carry a UTC offset: {body['now']!r}"}, 400
    job = publisher()
    published = job.catch_up(now)
    finals = job.finalize(now)
    return {"published": len(published), "final": [str(marker.period) for marker in finals]}, 200
