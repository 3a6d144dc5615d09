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
from collections.abc import Callable
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
    OUT_OF_WINDOW = "out_of_window"
    """v2 (SPEC §7): usage of a period before the amendment window (or before billing's first
    period); only the pipeline knows the window, `meterline rate` counts such usage out of period."""


EVENT_REASONS = tuple(reason for reason in Reason if reason is not Reason.OUT_OF_WINDOW)
"""The reasons an event file alone gives (SPEC §1, §4): all but the pipeline's window."""


class EventError(ValueError):
    """Why an event is rejected: a SPEC §1 reason code and a sentence naming the field."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


EventKey = tuple[str, str, str]
"""The dedup key: (subject, source, id)."""

_REQUIRED_STRINGS = ("id", "source", "type", "subject")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII)


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
    subject, source, event_id, event_type, time, data, content = read_event(raw)
    return UsageEvent(subject, source, event_id, event_type, time, data, digest(content))


EventFields = tuple[str, str, str, str, datetime, dict[str, Any], bytes]
"""subject, source, id, type, time, data and the canonical content (see ``canonical_content``)."""


def read_event(raw: bytes | str) -> EventFields:
    """What ``parse_event`` reads, as a tuple: the batch path's per-line step, with no event object."""
    document = _load(raw)
    if type(document) is not dict:
        raise EventError(Reason.MALFORMED, "an event must be a JSON object")
    get: Callable[[str], Any] = document.get
    if get("specversion") != "1.0":
        raise EventError(Reason.INVALID_ENVELOPE, 'specversion must be the string "1.0"')
    subject, source, event_id, event_type = get("subject"), get("source"), get("id"), get("type")
    if not (
        type(subject) is str and subject and type(source) is str and source
        and type(event_id) is str and event_id and type(event_type) is str and event_type
    ):  # fmt: skip
        for name in _REQUIRED_STRINGS:  # name the first attribute at fault
            value = get(name)
            if type(value) is not str or not value:
                raise EventError(Reason.INVALID_ENVELOPE, f"{name} must be a non-empty string")
    data = get("data")
    if data is None:
        data = {}
    elif type(data) is not dict:
        raise EventError(Reason.INVALID_ENVELOPE, "data must be a JSON object")
    # orjson reads a number with a fraction as a binary float: then read the text again, exactly.
    # Only data and extension attributes need looking at: the others are strings or rejected.
    if _holds_float(data) or (len(document) > _ATTRIBUTES + ("data" in document) and _holds_float(document)):
        document = _load_exact(raw)
        data = document.get("data") or {}
    time = parse_time(get("time"))
    return subject, source, event_id, event_type, time, data, canonical_content(document)


_ATTRIBUTES = 6
"""specversion, id, source, type, subject and time; data is optional."""


def parse_time(value: object) -> datetime:
    """RFC 3339 with an offset, in UTC. Digits past microseconds are dropped (Python's limit)."""
    match = _RFC3339.match(value) if type(value) is str else None
    if match is None:
        raise EventError(Reason.INVALID_ENVELOPE, "time must be an RFC 3339 timestamp with offset")
    text: str = match.string
    if len(text) > _SHORTEST_WITH_LONG_FRACTION:
        start, end = match.span(1)
        if end - start > 7:
            text = text[: start + 7] + text[end:]
    try:
        moment = _fromisoformat(text)
    except ValueError:
        try:
            moment = _fromisoformat(text.upper())  # fromisoformat takes only "T" and "Z"
        except ValueError as error:
            raise EventError(Reason.INVALID_ENVELOPE, f"time {value!r} is not a valid instant") from error
    if moment.tzinfo is UTC:
        return moment
    try:
        return moment.astimezone(UTC) if moment.utcoffset() else moment.replace(tzinfo=UTC)
    except OverflowError:  # e.g. 0001-01-01T00:30:00+01:00 is before year 1 in UTC
        raise EventError(
            Reason.INVALID_ENVELOPE, f"time {value!r} is outside years 1 to 9999 in UTC"
        ) from None


_SHORTEST_WITH_LONG_FRACTION = len("2026-11-03T10:15:00.1234567Z") - 1
_fromisoformat = datetime.fromisoformat


def _load(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _load_exact(raw)  # integers beyond 64 bits, or not JSON at all


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
    """Whether a dict or list holds a float at any depth."""
    for value in node.values() if type(node) is dict else node:
        kind = type(value)
        if kind is str or kind is int:
            continue
        if kind is float or ((kind is dict or kind is list) and _holds_float(value)):
            return True
    return False


_NUMBER_TAG = "\x00number"


def _canonical_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return int(value)  # 5.0 and 5 are the same number
        return {_NUMBER_TAG: str(value.normalize())}
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def digest(content: bytes) -> bytes:
    """An event's fingerprint: the digest of its ``canonical_content``."""
    return _blake2b(content, digest_size=16).digest()


def canonical_content(document: dict[str, Any]) -> bytes:
    """The event as canonical JSON: keys sorted, numbers by exact value. Equal for duplicates."""
    try:
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS, default=_canonical_number)
    except TypeError:
        try:  # an integer past 64 bits: the standard library writes it exactly
            return json.dumps(
                document,
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
                default=_canonical_number,
            ).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError) as error:
            raise EventError(Reason.MALFORMED, f"cannot read event content ({error})") from None


_blake2b = hashlib.blake2b
