"""Usage events: CloudEvents 1.0 JSON read straight from the text, numbers as exact decimals.

The fast path parses with orjson, which keeps JSON integers exact. A JSON number with a fraction
or an exponent would become a binary float there, so any event holding one is parsed again from
its text with the standard library, reading those numbers as ``Decimal``: no value ever passes
through a float.

Reading is total and linear in the size of the text: any text ends as an event, or as an
``EventError`` with a reason. What orjson would let through silently is caught without parsing
twice on the fast path: a key repeated in one object shortens orjson's canonical re-serialisation
below the text's own size (see ``_compact_size``), and only then is the text parsed again, by a
reader that names the repeated key. Lone surrogates and numbers beyond the bounds below never get
past orjson at all; the exact reader checks them itself.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Context, Decimal
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
    UNPROCESSABLE = "unprocessable"
    """Valid, but it cannot be processed: its ledger record would not fit the store, or the
    pipeline failed on it (an unforeseen error, or store failures past the attempts bound)."""
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

MAX_DIGITS = 38
"""Significant digits a number may have (DynamoDB's precision): more is no measurement."""
MIN_EXPONENT, MAX_EXPONENT = -130, 125
"""A non-zero number's magnitude lies in [1E-130, 1E+126), DynamoDB's range: exact arithmetic on
such numbers stays small (a sum of any of them has at most 294 digits)."""
MAX_DEPTH = 254
"""Objects and arrays nest at most this deep (the event object is level 1; RFC 8259 §9 lets a
reader set a limit). It is as deep as orjson writes, so the fast path checks it for nothing: its
canonical re-serialisation fails past it, and the text is then read by the exact reader, which
counts the levels."""

_REQUIRED_STRINGS = ("id", "source", "type", "subject")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII)
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?\Z", re.ASCII)
"""JSON's number syntax, which decimal strings follow too: no "+5", "5.", ".5", "1_000" or spaces."""
_SURROGATE = re.compile("[\ud800-\udfff]")
_BOM = b"\xef\xbb\xbf"
_NEWLINE = ord("\n")


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
    document, content, fault = _load(raw)
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
    time = parse_time(get("time"))
    if fault is not None:
        raise fault
    if content is None:
        content = canonical_content(document)
    return subject, source, event_id, event_type, time, data, content


_Loaded = tuple[dict[str, Any], bytes | None, "EventError | None"]
"""The document; its canonical content if the fast path made it already; and what the exact reader
found wrong in an attribute or in data, raised once the envelope's own checks pass, so that each
event has one reason whichever path read it."""


def _load(raw: bytes | str) -> _Loaded:
    text = raw if type(raw) is bytes else _as_bytes(raw)
    try:
        document = _loads(text)
    except orjson.JSONDecodeError:  # a lone surrogate, a number beyond 64 bits or floats, or not JSON
        if text.startswith(_BOM) and not text.startswith(_BOM, 3):
            return _load(text[3:])  # RFC 8259 §8.1 lets a reader skip one; a Windows tool may write it
        return _load_exact(text)
    if type(document) is not dict:
        raise EventError(Reason.MALFORMED, "an event must be a JSON object")
    # orjson reads a number with a fraction as a binary float: then read the text again, exactly.
    # Only data and extension attributes need looking at: the others are strings or rejected.
    data = document.get("data")
    if ((type(data) is dict or type(data) is list) and _holds_float(data, 2)) or (
        len(document) > _ATTRIBUTES + ("data" in document) and _holds_float(document, 1)
    ):
        return _load_exact(text)
    try:
        content = _dumps(document, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: the exact reader says how deep
        return _load_exact(text)
    size = len(content)
    spelled_otherwise = size != len(text) and (size != len(text) - 1 or text[-1] != _NEWLINE)
    if spelled_otherwise and size - content.count(b" ") != _compact_size(text):
        return _load_exact(text)  # a key may be repeated (or the text is spelled loosely): look
    return document, content, None


_ATTRIBUTES = 6
"""specversion, id, source, type, subject and time; data is optional."""
_loads = orjson.loads
_dumps = orjson.dumps


def _as_bytes(raw: bytes | str) -> bytes:
    if isinstance(raw, str):
        try:
            return raw.encode("utf-8")
        except UnicodeEncodeError:
            raise EventError(Reason.MALFORMED, "not valid JSON (the text holds a lone surrogate)") from None
    return bytes(raw)


def _compact_size(text: bytes) -> int:
    """The text's size without whitespace, spaces inside strings included.

    orjson writes every token in its shortest spelling and no whitespace, so the canonical content
    (spaces inside strings aside) is never longer than the text's own tokens; a repeated key is
    dropped from it, with at least five bytes (``"":0,``). So when the two sizes are equal, no key
    was repeated; when they differ, the text is read again by the reader that can tell.
    """
    return len(text) - text.count(b" ") - text.count(b"\n") - text.count(b"\r") - text.count(b"\t")


def _holds_float(node: Any, depth: int) -> bool:
    """Whether the object or array holds a float at any depth; raise if it nests deeper than MAX_DEPTH."""
    for value in node.values() if type(node) is dict else node:
        kind = type(value)
        if kind is str or kind is int:
            continue
        if kind is float:
            return True
        if (kind is dict or kind is list) and _nested_holds_float(value, depth + 1):
            return True
    return False


def _nested_holds_float(node: Any, depth: int) -> bool:
    stack: list[tuple[Any, int]] = [(node, depth)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        for value in node.values() if type(node) is dict else node:
            kind = type(value)
            if kind is float:
                return True
            if kind is dict or kind is list:
                stack.append((value, depth + 1))
    return False


def _too_deep() -> EventError:
    return EventError(Reason.MALFORMED, f"objects and arrays nest deeper than {MAX_DEPTH} levels")


# --- the exact reader ---------------------------------------------------------------------------


class _RepeatedKeyError(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class _OutOfBounds:
    """A JSON number beyond MAX_DIGITS or the exponent bounds, as the exact reader leaves it."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text if len(self.text) <= 40 else f"{self.text[:20]}…({len(self.text):,} characters)"


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKeyError(key)
            seen.add(key)
    return document


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _load_exact(text: bytes) -> _Loaded:
    bounded = True

    def exact_float(number_text: str) -> Decimal | _OutOfBounds:
        nonlocal bounded
        number = exact_number(number_text)
        if number is None:
            bounded = False
            return _OutOfBounds(number_text)
        return number

    def exact_int(number_text: str) -> int | _OutOfBounds:
        nonlocal bounded
        if len(number_text) <= 20 or exact_number(number_text) is not None:
            return int(number_text)
        bounded = False
        return _OutOfBounds(number_text)

    try:
        document = json.loads(
            text.decode("utf-8"),
            object_pairs_hook=_object,
            parse_float=exact_float,
            parse_int=exact_int,
            parse_constant=_reject_constant,
        )
    except _RepeatedKeyError as error:
        raise EventError(Reason.MALFORMED, f"key {error.key!r} appears twice in one object") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise EventError(Reason.MALFORMED, f"not valid JSON ({_first_line(error)})") from None
    if type(document) is not dict:
        raise EventError(Reason.MALFORMED, "an event must be a JSON object")
    # Walk the document only if it may hold a fault: few events are read here, fewer need it.
    suspect = not bounded or _SURROGATE_ESCAPE.search(text) or text.count(b"[") + text.count(b"{") > MAX_DEPTH
    return document, None, _fault(document) if suspect else None


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""How a lone surrogate gets into valid UTF-8 JSON text (a pair of them, which is fine, too)."""


def _fault(document: dict[str, Any]) -> EventError | None:
    """The first attribute, else the first place in data, holding text that is not Unicode or a
    number beyond the bounds; raise if the document nests deeper than MAX_DEPTH."""
    envelope = in_data = None
    for name, value in document.items():
        if name == "data":
            in_data = _first_problem(value, Reason.INVALID_VALUE, ("data",), 2)
        else:  # the attribute as an object of one key, so that its name is checked as a key
            problem = _first_problem({name: value}, Reason.INVALID_ENVELOPE, ("envelope",), 1)
            envelope = envelope or problem
    return envelope or in_data


Path = tuple[Any, ...]
"""A place in a document, built as (parent path, key) pairs: one tuple per node, not per level."""


def _first_problem(value: Any, reason: Reason, where: Path, depth: int) -> EventError | None:
    problem: EventError | None = None
    stack: list[tuple[Any, Path, int]] = [(value, where, depth)]
    while stack:
        node, path, depth = stack.pop()
        kind = type(node)
        if kind is dict or kind is list:
            if depth > MAX_DEPTH:
                raise _too_deep()
            for key, child in node.items() if kind is dict else enumerate(node):
                if problem is None and type(key) is str and not key.isascii() and _SURROGATE.search(key):
                    problem = EventError(reason, f"a key in {_text(path)} is not Unicode text")
                stack.append((child, (path, key), depth + 1))
        elif problem is None and kind is str and not node.isascii() and _SURROGATE.search(node):
            problem = EventError(reason, f"{_text(path)} is not Unicode text (a lone surrogate)")
        elif problem is None and kind is _OutOfBounds:
            problem = EventError(
                reason,
                f"{_text(path)}: {node} has more than {MAX_DIGITS} significant digits or a magnitude"
                f" outside 1E{MIN_EXPONENT} to 1E+{MAX_EXPONENT + 1}",
            )
    return problem


def _text(path: Path) -> str:
    """A path as data.a.b[2] (or the attribute's name); a key that is not a plain word as ['k'],
    escaped as Python escapes it, so that an error stays one printable line."""
    parts: list[str] = []
    while len(path) == 2:
        path, key = path
        plain = type(key) is str and key.isprintable() and key and not set(key) & set(".[]'")
        parts.append(f".{key}" if plain else f"[{key!r}]")
    text: str = path[0] + "".join(reversed(parts))
    return text.removeprefix("envelope.")


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


# --- numbers ----------------------------------------------------------------------------------


def exact_number(text: str) -> Decimal | None:
    """The exact value of a number written in JSON's number syntax (as a JSON number or a decimal
    string), or None if it is not one or lies beyond the bounds. Linear in the text's length."""
    match = _NUMBER.match(text)
    if match is None:
        return None
    if len(text) <= MAX_DIGITS and "e" not in text and "E" not in text:
        return Decimal(text)  # short and without an exponent: within every bound
    whole, fraction, exponent = match.group(1), match.group(2) or "", match.group(3)
    digits = (whole + fraction).lstrip("0")
    if not digits:
        return _ZERO
    if len(digits.rstrip("0")) > MAX_DIGITS:
        return None
    shift = 0
    if exponent is not None:
        magnitude = exponent.lstrip("+-").lstrip("0")
        if len(magnitude) > 6:
            return None
        shift = -int(magnitude or "0") if exponent[0] == "-" else int(magnitude or "0")
    # the first significant digit's power of ten, before the exponent
    leading = len(whole) - 1 if whole != "0" else -(len(fraction) - len(fraction.lstrip("0")) + 1)
    if not MIN_EXPONENT <= leading + shift <= MAX_EXPONENT:
        return None
    return Decimal(text)


_ZERO = Decimal(0)
_EXACT = Context(prec=MAX_DIGITS)
"""Rounds nothing: every number that gets past the bounds has at most MAX_DIGITS digits."""


def normalized(number: Decimal) -> Decimal:
    """The number with trailing zeros dropped (1.50 → 1.5, 100 → 1E+2), exactly."""
    return number.normalize(_EXACT)


# --- time ---------------------------------------------------------------------------------------


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
        moment = _read_leniently(text, value)
    if moment.tzinfo is UTC:
        return moment
    try:
        return moment.astimezone(UTC) if moment.utcoffset() else moment.replace(tzinfo=UTC)
    except OverflowError:  # e.g. 0001-01-01T00:30:00+01:00 is before year 1 in UTC
        raise EventError(
            Reason.INVALID_ENVELOPE, f"time {value!r} is outside years 1 to 9999 in UTC"
        ) from None


def common_time(value: str) -> datetime | None:
    """``parse_time`` of the spellings nearly every producer writes, in a fifth of its time: whole
    seconds, milliseconds or microseconds, in UTC as ``Z`` or with an offset ``±hh:mm``. None:
    ``parse_time`` reads it."""
    size = len(value)
    if size == 24 or size == 20 or size == 27:
        if value[-1] != "Z":
            return None
        whole = size == 20
    elif size == 29 or size == 25 or size == 32:
        if value[-6] not in "+-" or value[-3] != ":":
            return None
        whole = size == 25
    else:
        return None
    if value[4:17:3] != "--T::" or not (whole or value[19] == ".") or not value.isascii():
        return None
    try:
        moment = _fromisoformat(value)  # it reads digits only where these separators leave them
    except ValueError:
        return None
    if moment.tzinfo is UTC:
        return moment
    try:
        return moment.astimezone(UTC) if moment.utcoffset() else moment.replace(tzinfo=UTC)
    except OverflowError:
        return None


def _read_leniently(text: str, value: object) -> datetime:
    """What fromisoformat refuses and RFC 3339 allows: a lower-case t or z, or a leap second.

    A leap second (``23:59:60`` in UTC) is read as the last microsecond of its minute, so that it
    stays in its own day, month and billing period."""
    if text[17:19] != "60":
        try:
            return _fromisoformat(text.upper())
        except ValueError as error:
            raise EventError(Reason.INVALID_ENVELOPE, f"time {value!r} is not a valid instant") from error
    end = 19
    while end < len(text) and (text[end] == "." or text[end].isdigit()):
        end += 1
    try:
        moment = parse_time(text[:17] + "59.999999" + text[end:])
    except EventError:
        raise EventError(Reason.INVALID_ENVELOPE, f"time {value!r} is not a valid instant") from None
    if (moment.hour, moment.minute) != (23, 59):
        raise EventError(
            Reason.INVALID_ENVELOPE, f"time {value!r}: second 60 is a leap second only at 23:59 UTC"
        )
    return moment


_SHORTEST_WITH_LONG_FRACTION = len("2026-11-03T10:15:00.1234567Z") - 1
_fromisoformat = datetime.fromisoformat


# --- content ------------------------------------------------------------------------------------


_NUMBER_TAG = 0.5
"""Marks a number that is not whole in canonical content, as ``[0.5, "its digits"]``. A checked
event holds no float (its numbers are read as int or Decimal), so no event's own content can
spell the mark, and orjson writes it."""


def _canonical_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return int(value)  # 5.0 and 5 are the same number
        return [_NUMBER_TAG, str(normalized(value))]
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


def digest(content: bytes) -> bytes:
    """An event's fingerprint: the digest of its ``canonical_content``."""
    return _blake2b(content, digest_size=16).digest()


def canonical_content(document: dict[str, Any]) -> bytes:
    """The event as canonical JSON: keys sorted, numbers by exact value. Equal for duplicates.

    The document is one ``read_event`` checked: its numbers are within the bounds and its text is
    Unicode, so an integer past 64 bits is small enough for the standard library to write."""
    try:
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS, default=_canonical_number)
    except TypeError:  # an integer past 64 bits: the standard library writes it
        return json.dumps(
            document,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=_canonical_number,
        ).encode("utf-8", "surrogatepass")


_blake2b = hashlib.blake2b
