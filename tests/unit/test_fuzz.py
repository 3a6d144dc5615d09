"""Fuzzing: arbitrary JSON and near-valid CloudEvents, read by the parser, rated by `meterline rate`
and metered by the pipeline's meter on the in-memory store.

The properties: no exception but EventError leaves the parser, none at all leaves rate or meter;
every input ends in exactly one outcome, the same in rate and in meter, and the counts reconcile.
Time per input is bounded by construction: inputs are a few kilobytes at most (extreme numbers and
deep nesting included, which took minutes before), and each example must finish within
Hypothesis' deadline.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterline.adapters.memory import MemoryPublisher, MemoryStore
from meterline.events import EventError, parse_event, read_event
from meterline.local.ledgers import LedgerCounts
from meterline.metering import Metering
from meterline.offline import rate_lines
from meterline.pipeline.meter import DeliveredRecord, Meter
from meterline.pipeline.processing import MeterProcessor
from meterline.records import MAX_ITEM_BYTES, AcceptedUsage, Delivery, item_bytes, pack_book, read_usage
from meterline.topology import TABLES, USAGE_EVENTS, USAGE_REJECTED
from meterline.usage import UsageBook, fold
from tests.helpers import NOVEMBER, corpus_catalog

CATALOG = corpus_catalog()
METERING = Metering(CATALOG.meters_by_type)
FUZZ = settings(
    max_examples=120,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- JSON text, spelled as a hostile producer might ---------------------------------------------

EXTREME_NUMBERS = st.sampled_from(
    [
        "1e999999",
        "-1e-999999",
        "1e400",
        "9" * 60,
        "1" + "0" * 126,
        "1e126",
        "9.99e125",
        "1e-130",
        "1e-131",
        "0.1e-129",
        "-0",
        "0e99999999999999999999",
        "1.0000000000000000000000000000000000001",
        "1.00000000000000000000000000000000000001",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890",
        "0.1",
        "5.0",
        "1E2",
    ]
)
JSON_NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.from_regex(r"-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,7})?", fullmatch=True),
    EXTREME_NUMBERS,
)
ESCAPES = st.sampled_from(
    [
        "\\ud800",
        "\\udfff",
        "\\ud83d\\ude00",
        "\\udc00\\ud800",
        "\\u0000",
        "\\n",
        "\\/",
        '\\"',
        "\\\\",
        "\\u00e9",
    ]
)
STRING_BODIES = st.lists(
    st.one_of(
        st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=8).map(
            lambda text: text.replace("\\", "\\\\").replace('"', '\\"')
        ),
        ESCAPES,
        st.sampled_from(["kafka.ingress", "org-42", "1.5", "+5", "5.", "1_000", "\u0665", " 7", "1e999999"]),
    ),
    max_size=4,
).map("".join)
JSON_STRINGS = STRING_BODIES.map(lambda body: f'"{body}"')
KEYS = st.one_of(
    st.sampled_from(['"bytes"', '"cluster"', '"level"', '"user"', '"id"', '"gb"', '"method"', '"route"']),
    JSON_STRINGS,
)
SPACE = st.sampled_from(["", "", "", " ", "\n", "\t ", "\r\n"])


def json_text(max_leaves: int = 12) -> st.SearchStrategy[str]:
    scalars = st.one_of(
        st.sampled_from(["null", "true", "false", "NaN", "Infinity"]), JSON_NUMBERS, JSON_STRINGS
    )

    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        arrays = st.lists(children, max_size=4).map(lambda items: "[" + ",".join(items) + "]")
        objects = st.lists(st.tuples(KEYS, SPACE, children), max_size=4).map(
            lambda pairs: "{" + ",".join(f"{key}{space}:{space}{value}" for key, space, value in pairs) + "}"
        )
        return arrays | objects

    return st.recursive(scalars, extend, max_leaves=max_leaves)


ANY_JSON = json_text()

# --- near-valid CloudEvents -------------------------------------------------------------------

VALID = {
    "specversion": '"1.0"',
    "id": '"e1"',
    "source": '"lkc-1/us-east-1"',
    "type": '"kafka.ingress"',
    "subject": '"org-42"',
    "time": '"2026-11-03T10:15:00Z"',
    "data": '{"bytes":1048576,"cluster":"lkc-1"}',
}
TYPES = st.sampled_from(
    ['"kafka.ingress"', '"api.call"', '"storage.snapshot"', '"user.active"', '"gauge.reading"', '"api.route"']
)
TIMES = st.sampled_from(
    [
        '"2026-11-03T10:15:00Z"',
        '"2026-11-30T23:59:60Z"',
        '"2026-11-03T10:15:60Z"',
        '"2026-11-03T10:15:00.1234567890+01:00"',
        '"2026-10-31T23:30:00-01:00"',
        '"0001-01-01T00:30:00+01:00"',
        '"9999-12-31T23:59:60Z"',
        '"2026-11-03"',
    ]
)
DATA_VALUES = st.one_of(JSON_NUMBERS, JSON_STRINGS, ANY_JSON)
DATA = st.lists(st.tuples(KEYS, DATA_VALUES), max_size=5).map(
    lambda pairs: "{" + ",".join(f"{key}:{value}" for key, value in pairs) + "}"
)


@st.composite
def near_valid_events(draw: st.DrawFn) -> bytes:
    """A valid event with some of its attributes replaced, repeated, dropped or added."""
    fields = dict(VALID)
    fields["id"] = f'"e{draw(st.integers(0, 5))}"'
    fields["subject"] = draw(st.sampled_from(['"org-42"', '"org-7"', '"org-42\\u0000x"']) | JSON_STRINGS)
    fields["type"] = draw(TYPES)
    fields["time"] = draw(TIMES)
    fields["data"] = draw(DATA)
    for name in draw(st.lists(st.sampled_from(sorted(VALID)), max_size=3)):
        fields[name] = draw(ANY_JSON)
    pairs = [(json.dumps(name), value) for name, value in fields.items()]
    if draw(st.booleans()):
        pairs.pop(draw(st.integers(0, len(pairs) - 1)))
    pairs += draw(st.lists(st.tuples(KEYS, ANY_JSON), max_size=2))  # extension attributes, repeats
    space = draw(SPACE)
    text = "{" + f",{space}".join(f"{key}:{space}{value}" for key, value in pairs) + "}"
    depth = draw(st.sampled_from([0, 0, 0, 253, 254, 300, 2000]))
    if depth:
        text = text[:-1] + ',"deep":' + "[" * depth + "]" * depth + "}"
    prefix = draw(st.sampled_from(["", "", "\ufeff", " "]))
    return (prefix + text).encode("utf-8", "surrogatepass")


EVENTS = st.one_of(near_valid_events(), ANY_JSON.map(lambda text: text.encode()), st.binary(max_size=64))


# --- the properties -----------------------------------------------------------------------------


@FUZZ
@given(raw=EVENTS)
def test_the_parser_reads_any_input_or_rejects_it_with_a_reason(raw: bytes) -> None:
    for reader in (read_event, parse_event):
        try:
            reader(raw)
        except EventError as error:
            assert "\n" not in str(error)


@FUZZ
@given(raw=near_valid_events())
def test_an_accepted_event_fits_the_ledger_whenever_its_size_says_it_cannot_outgrow_it(raw: bytes) -> None:
    try:
        subject, source, event_id, time, readings, _ = read_usage(METERING, raw)
    except EventError:
        return
    measurements = tuple([(key, group, value) for (key, group), _, value in readings])
    usage = AcceptedUsage((subject, source, event_id), b"f" * 16, time, measurements, "x" * 300)
    book = UsageBook()
    fold(book.states_of(subject, NOVEMBER), readings, time, event_id)
    event_type = json.loads(raw.decode("utf-8-sig"))["type"]
    bound = (len(raw) + 1024) * METERING.weights[event_type]
    assert item_bytes(usage.to_item()) <= min(bound, MAX_ITEM_BYTES)
    assert len(pack_book(book)) <= min(bound, MAX_ITEM_BYTES)


@FUZZ
@given(lines=st.lists(EVENTS, max_size=12))
def test_rate_and_meter_give_every_input_one_outcome_and_the_same_one(lines: list[bytes]) -> None:
    lines = [line for line in lines if line.strip() and b"\n" not in line and b"\r" not in line]
    # WHEN rated offline
    result = rate_lines(CATALOG, lines, NOVEMBER)
    orjson.dumps(result.to_json())  # what `meterline rate` prints
    summary = result.summary
    # THEN every line is counted once
    assert summary.received == len(lines)
    assert (
        summary.received == summary.accepted + summary.duplicates + summary.rejected + summary.out_of_period
    )
    # WHEN metered as one partition
    store, publisher = MemoryStore([table.name for table in TABLES]), MemoryPublisher()
    records = [DeliveredRecord(Delivery(USAGE_EVENTS.name, 0, n), None, line) for n, line in enumerate(lines)]
    report = MeterProcessor(Meter(CATALOG, store, publisher)).run(records)
    # THEN nothing is handed back, each record has rate's outcome, every reject is dead-lettered
    assert report.failed == []
    assert report.accepted == summary.accepted + summary.out_of_period
    assert report.duplicates == summary.duplicates
    assert dict(report.rejected_by_reason) == {r: n for r, n in summary.rejected_by_reason.items() if n}
    assert len(publisher.on(USAGE_REJECTED.name)) == report.rejected
    # AND the ledgers reconcile
    assert LedgerCounts(store).received == len(lines)


def spelled(value: Any, loose: bool) -> str:
    """A JSON value as text: compact, or loose (spaces around every token, and every '/' and 'e'
    in a string escaped)."""
    if not loose:
        return orjson.dumps(value).decode()
    if isinstance(value, dict):
        return "{ " + " , ".join(f"{spelled(k, True)} : {spelled(v, True)}" for k, v in value.items()) + " }"
    if isinstance(value, str):
        escaped = {"e": "\\u0065", "/": "\\/"}
        return '"' + "".join(escaped.get(c) or json.dumps(c)[1:-1] for c in value) + '"'
    return json.dumps(value)


@FUZZ
@given(
    data=st.dictionaries(
        st.sampled_from(["bytes", "cluster", "x/y", "route", "method"]),
        st.one_of(st.integers(0, 10**6), st.text(max_size=5), st.booleans(), st.none()),
        max_size=4,
    ),
    kind=st.sampled_from(["kafka.ingress", "api.route", "api.call"]),
)
def test_an_event_spelled_loosely_reads_as_the_same_event_as_spelled_compactly(
    data: dict[str, Any], kind: str
) -> None:
    # GIVEN one event, spelled compactly (orjson's fast path) and loosely (the exact reader)
    event = {"specversion": "1.0", "id": "e/1", "source": "s", "type": kind, "subject": "org-42"}
    event |= {"time": "2026-11-03T10:15:00Z", "data": data}
    outcomes = []
    for loose in (False, True):
        try:
            outcomes.append(read_usage(METERING, spelled(event, loose).encode()))
        except EventError as error:
            outcomes.append(error.reason)  # type: ignore[arg-type]
    # THEN both are read alike: the same fields, readings and canonical content, or the same reason
    assert outcomes[0] == outcomes[1]
