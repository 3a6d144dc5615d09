"""Usage events: CloudEvents 1.0 JSON read straight from the text, numbers as exact decimals.

The fast path parses with orjson, which keeps JSON integers exact. A JSON number with a fraction
or an exponent would become a binary float there, so any event holding one is parsed again from
its text with the standard library, reading those numbers as ``Decimal``: no value ever passes
through a float.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson

from meterline.periods import Period


class Reason(StrEnum):
    MALFORMED = "malformed"
    INVALID_ENVELOPE = "invalid_envelope"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_VALUE = "invalid_value"
    CONFLICT = "conflict"


class EventError(ValueError):
    """Why an event is rejected: a SPEC §1 reason code and a sentence naming the field."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


EventKey = tuple[str, str, str]
"""The dedup key: (subject, source, id)."""

_REQUIRED_STRINGS = ("id", "source", "type", "subject")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII)


@dataclass(frozen=True, slots=True)
class UsageEvent:
    subject: str
    source: str
    id: str
    type: str
    time: datetime
    data: dict[str, Any]
    fingerprint: bytes
    """A digest of the whole event's content: equal for duplicates, different for conflicts."""

    @property
    def key(self) -> EventKey:
        return (self.subject, self.source, self.id)

    @property
    def period(self) -> Period:
        return Period(self.time.year, self.time.month)


def parse_event(raw: bytes | str) -> UsageEvent:
    """Parse and validate one structured-mode CloudEvent; raise ``EventError`` if it is rejected."""
    document = _load(raw)
    if not isinstance(document, dict):
        raise EventError(Reason.MALFORMED, "an event must be a JSON object")
    if document.get("specversion") != "1.0":
        raise EventError(Reason.INVALID_ENVELOPE, 'specversion must be the string "1.0"')
    for name in _REQUIRED_STRINGS:
        value = document.get(name)
        if type(value) is not str or not value:
            raise EventError(Reason.INVALID_ENVELOPE, f"{name} must be a non-empty string")
    data = document.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EventError(Reason.INVALID_ENVELOPE, "data must be a JSON object")
    return UsageEvent(
        subject=document["subject"],
        source=document["source"],
        id=document["id"],
        type=document["type"],
        time=parse_time(document.get("time")),
        data=data,
        fingerprint=fingerprint(document),
    )


def parse_time(value: object) -> datetime:
    """RFC 3339 with an offset, in UTC. Digits past microseconds are dropped (Python's limit)."""
    if type(value) is not str or not _RFC3339.match(value):
        raise EventError(Reason.INVALID_ENVELOPE, "time must be an RFC 3339 timestamp with offset")
    text = value.upper()
    dot = text.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        if end - dot > 7:
            text = text[: dot + 7] + text[end:]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise EventError(Reason.INVALID_ENVELOPE, f"time {value!r} is not a valid instant") from error
    if moment.utcoffset():
        return moment.astimezone(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is not UTC else moment


def _load(raw: bytes | str) -> Any:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _load_exact(raw)  # integers beyond 64 bits, or not JSON at all
    if _holds_float(document):
        return _load_exact(raw)
    return document


def _load_exact(raw: bytes | str) -> Any:
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise EventError(Reason.MALFORMED, f"not valid JSON ({_first_line(error)})") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _holds_float(node: Any) -> bool:
    if type(node) is float:
        return True
    if type(node) is dict:
        return any(_holds_float(value) for value in node.values())
    if type(node) is list:
        return any(_holds_float(value) for value in node)
    return False


_NUMBER_TAG = "\x00number"


def _canonical_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return int(value)  # 5.0 and 5 are the same number
        return {_NUMBER_TAG: str(value.normalize())}
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def fingerprint(document: dict[str, Any]) -> bytes:
    """Content digest over the canonical JSON (sorted keys, numbers by exact value)."""
    try:
        canonical = orjson.dumps(document, option=orjson.OPT_SORT_KEYS, default=_canonical_number)
    except TypeError:
        try:  # an integer past 64 bits: the standard library writes it exactly
            canonical = json.dumps(
                document,
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
                default=_canonical_number,
            ).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError) as error:
            raise EventError(Reason.MALFORMED, f"cannot read event content ({error})") from None
    return hashlib.blake2b(canonical, digest_size=16).digest()
