"""close on Cloud Run functions: Cloud Scheduler calls it over HTTP, optionally with {"now": ...}."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import flask
import functions_framework

from meterline.adapters.gcp_functions import Settings, Wiring
from meterline.pipeline.close import Closer


@cache
def closer() -> Closer:
    wiring = Wiring(Settings.from_env(os.environ, Path(__file__).parent))
    return Closer(wiring.catalog, wiring.store, wiring.publisher, wiring.settings.grace)


@functions_framework.http
def handler(request: flask.Request) -> tuple[dict[str, Any], int]:
    # {"now": "..."} closes as of another instant (a replay); an empty body closes as of now.
    body = request.get_json(silent=True) or {}
    if not isinstance(body, dict):
        return {"error": 'the request body must be a JSON object such as {"now": "..."}'}, 400
    try:
        now = datetime.fromisoformat(body["now"]) if body.get("now") else datetime.now(UTC)
    except (TypeError, ValueError):
        return {"error": f"now must be an ISO 8601 time with an offset, not {body['now']!r}"}, 400
    if now.tzinfo is None:
        return {"error": f"now must carry a UTC offset: {body['now']!r}"}, 400
    closed = closer().run(now)
    return {"closed": [str(period) for period in closed]}, 200
