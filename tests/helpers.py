"""Builders shared by the unit tests: catalogs from YAML text, events as NDJSON lines, fixtures."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meterline.catalog import Catalog, parse_catalog
from meterline.offline import RateResult, rate_lines
from meterline.periods import Period

EVENTS = Path(__file__).parent / "events"
NOVEMBER = Period(2026, 11)


def catalog(yaml_text: str) -> Catalog:
    return parse_catalog(textwrap.dedent(yaml_text), "<test catalog>")


def event(
    event_id: str,
    data: dict[str, Any] | None = None,
    *,
    type: str = "kafka.ingress",
    subject: str = "org-42",
    source: str = "lkc-1/us-east-1",
    time: str = "2026-11-03T10:15:00Z",
) -> str:
    """One CloudEvent as an NDJSON line; numbers meant to be exact are best passed as strings."""
    document = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": type,
        "subject": subject,
        "time": time,
        "data": data if data is not None else {},
    }
    return json.dumps(document, separators=(",", ":"))


def rate(catalog_: Catalog, lines: list[str] | list[bytes], period: Period = NOVEMBER) -> dict[str, Any]:
    """`meterline rate` on in-memory lines, as the JSON document it prints."""
    result: RateResult = rate_lines(catalog_, lines, period)
    document: dict[str, Any] = json.loads(json.dumps(result.to_json()))
    return document


def invoice_of(document: dict[str, Any], tenant: str = "org-42") -> dict[str, Any]:
    matches: list[dict[str, Any]] = [
        invoice for invoice in document["invoices"] if invoice["tenant"] == tenant
    ]
    assert len(matches) == 1, f"expected one invoice for {tenant}, got {len(matches)}"
    return matches[0]


@dataclass(frozen=True)
class BadEvent:
    reason: str
    name: str
    raw: bytes

    @property
    def lines(self) -> list[bytes]:
        return self.raw.splitlines()


def bad_events() -> list[BadEvent]:
    """The rejected-event corpus: tests/events/bad/<reason>/<case>.ndjson."""
    return [
        BadEvent(path.parent.name, path.stem, path.read_bytes())
        for path in sorted((EVENTS / "bad").glob("*/*.ndjson"))
    ]


def corpus_catalog() -> Catalog:
    return parse_catalog((EVENTS / "catalog.yaml").read_text(encoding="utf-8"), "tests/events/catalog.yaml")
