"""The plain event decoded by type (``meterline.plain``): what it reads, `meterline rate` reads as
``read_usage`` reads it, and what it cannot read alike it leaves to ``read_usage``."""

from __future__ import annotations

import json
import string
from datetime import UTC

from hypothesis import given
from hypothesis import strategies as st

from meterline.bench import _METERS_AND_PLANS
from meterline.catalog import parse_catalog
from meterline.events import common_time
from meterline.metering import Metering
from meterline.offline import rate_lines
from meterline.plain import PlainDecoder
from meterline.records import MAX_ITEM_BYTES
from tests.helpers import NOVEMBER
from tests.unit.test_events import TIME_TEMPLATES
from tests.unit.test_fuzz import FUZZ

CATALOG = parse_catalog(
    _METERS_AND_PLANS + "  - {tenant: org-1, plan: standard}\n  - {tenant: org-2, plan: enterprise}\n",
    "<plain catalog>",
)
"""Every aggregation: a sum grouped by one key, a count, a max, a count grouped, a unique count,
a time-weighted sum and a latest value reading one key."""
DECODER = PlainDecoder(Metering(CATALOG.meters_by_type), MAX_ITEM_BYTES)

NUMBERS = st.sampled_from(
    [
        "0",
        "-0",
        "7",
        "-3",
        "1048576",
        str(2**63 - 1),
        str(2**63),
        str(2**64),
        str(10**40),
        "1" + "0" * 38,
        "1.10",
        "0.5",
        "-1.5",
        "1e5",
        "1E+05",
        "100e-2",
        "0.0",
        "-0.0",
        "0e5",
        "1e400",
        "1e-131",
        "1.0000000000000000000000000000000000000001",
        "12345678901234567890123456789012345678.9",
    ]
)
TEXTS = st.sampled_from(
    [
        '"lkc-1"',
        '"lkc-2"',
        '"/v1/produce"',
        '"u-1"',
        '"5"',
        '"1.5"',
        '"NaN"',
        '" 5"',
        '"1_000"',
        '""',
        '"lkc\\u002d1"',
        '"\\/v1"',
        '"a\\"b"',
        '"\\ud800"',
        '"é"',
    ]
)
VALUES = st.one_of(NUMBERS, TEXTS, st.sampled_from(["null", "true", "{}", "[]", '{"a":1}']))
KEYS = st.sampled_from(["bytes", "cluster", "partitions", "user", "endpoint", "gb", "extra"])
TIMES = st.sampled_from(
    [
        "2026-11-03T10:15:00Z",
        "2026-11-03T10:15:00.120Z",
        "2026-11-03T10:15:00.000000Z",
        "2026-11-03T10:15:00+01:00",
        "2026-11-01T00:30:00+01:00",
        "2026-11-30T23:59:60Z",
        "2026-10-31T23:59:59.999Z",
        "2026-11-03t10:15:00z",
        "2026-11-03 10:15:00Z",
        "2026-11-03T10:15:00.123456Z",
        "2026-11-03T10:15:00.1234Z",
        "2026-11-03T10:15:00.1a0Z",
        "2026-11-03T10:15:00,120Z",
        "2026-11-03T10:15:00.12٣Z",
        "2026-11-03 10:15:00.120Z",
        "2026-11-31T10:15:00.120Z",
        "2026-11-03T24:00:00.000Z",
        "2026-11-03T10:15:60.000Z",
        "2026-11-30T23:59:60.500Z",
        "2026-12-01T00:00:00.000Z",
    ]
)
"""Time spellings the typed path reads itself (whole seconds, milliseconds or microseconds in UTC),
and some near them that it must leave to read_usage, or read as read_usage reads them."""
TYPES = st.sampled_from(
    ["kafka.ingress", "kafka.egress", "kafka.partitions", "api.request", "storage.snapshot", "other.type"]
)


@st.composite
def plain_lines(draw: st.DrawFn) -> bytes:
    """Events much like producers write, as text: data of the catalog's keys (absent, null,
    repeated, an extra key, text where a number goes), numbers of every spelling and size,
    escaped strings, loose spacing, a repeated or extra attribute."""
    data = draw(st.lists(st.tuples(KEYS, VALUES), max_size=4))
    pairs = [
        ("specversion", '"1.0"'),
        ("id", f'"e{draw(st.integers(0, 6))}"'),
        ("source", draw(st.sampled_from(['"s/1"', '"s/2"', '"s\\/1"']))),
        ("type", json.dumps(draw(TYPES))),
        ("subject", draw(st.sampled_from(['"org-1"', '"org-2"', '"org-3"']))),
        ("time", json.dumps(draw(TIMES), ensure_ascii=False)),
        ("data", "{" + ",".join(f'"{key}":{value}' for key, value in data) + "}"),
    ]
    pairs = draw(st.permutations(pairs))
    if draw(st.integers(0, 9)) == 0:
        pairs.append(draw(st.sampled_from([("id", '"e9"'), ("type", '"kafka.egress"'), ("ext", '"x"')])))
    space = draw(st.sampled_from(["", "", "", " "]))
    line = ("{" + f",{space}".join(f'"{key}":{space}{value}' for key, value in pairs) + "}").encode()
    return line + b"\n" if draw(st.booleans()) else line


@FUZZ
@given(lines=st.lists(plain_lines(), max_size=16))
def test_rate_reads_plain_events_by_type_as_read_usage_reads_them(lines: list[bytes]) -> None:
    # GIVEN plain events as bytes (the typed decode first) and as text (read_usage alone)
    texts = [line.decode() for line in lines]
    # WHEN rated THEN `meterline rate` prints the same for both
    assert rate_lines(CATALOG, lines, NOVEMBER).to_json() == rate_lines(CATALOG, texts, NOVEMBER).to_json()


def _checked(line: bytes) -> bool:
    """Whether the typed path reads the line itself (its time is one ``take`` reads)."""
    assert DECODER.decode is not None
    event = DECODER.decode(line)
    return event.take(line, {}, {}) is not None


def _line(data: str, space: str = "") -> bytes:
    return (
        f'{{"specversion":"1.0","id":"e1","source":"s","type":"kafka.ingress",{space}"subject":"org-1",'
        f'"time":"2026-11-03T10:15:00Z","data":{data}}}'
    ).encode()


def test_a_compact_event_of_text_integers_and_decimals_is_read_on_the_typed_path() -> None:
    # GIVEN compact events: text and integers, a decimal, an absent or null group, an extra key
    # another type's meters read
    for data in ['{"bytes":5,"cluster":"lkc-1"}', '{"bytes":1.10}', '{"bytes":5,"cluster":null}']:
        # WHEN decoded and checked THEN the typed path reads it
        assert _checked(_line(data)), data
    # AND so it does a line ending in a newline, or spaced loosely
    assert _checked(_line('{"bytes":5,"user":"u-1"}') + b"\n")
    assert _checked(_line('{"bytes":5}', space=" "))


def test_what_the_typed_decode_may_read_otherwise_is_left_to_read_usage() -> None:
    # GIVEN events whose decode keeps the last of a repeated key, reads text as a number, reads
    # an escape, or a decimal read_usage may spell otherwise or rejects
    for data in [
        '{"bytes":5,"bytes":6}',
        '{"bytes":"5.5"}',
        '{"bytes":5,"cluster":"lkc\\u002d1"}',
        '{"bytes":0e5}',
        '{"bytes":-1.5}',
        '{"bytes":1e400}',
    ]:
        # WHEN decoded and checked THEN read_usage reads it
        assert not _checked(_line(data)), data


@st.composite
def changed_times(draw: st.DrawFn) -> str:
    """A common time spelling with up to three characters changed."""
    text = list(draw(st.sampled_from(TIME_TEMPLATES)))
    for position, character in draw(
        st.lists(
            st.tuples(st.integers(0, 31), st.sampled_from([*string.printable, "٣", "１", "é"])), max_size=3
        )
    ):
        if position < len(text):
            text[position] = character
    return "".join(text)


@given(
    value=st.one_of(
        TIMES, changed_times(), st.text(st.sampled_from("0123456789-T:.Z+ ,"), min_size=19, max_size=28)
    )
)
def test_an_event_taken_on_the_typed_path_has_the_time_common_time_reads(value: str) -> None:
    # GIVEN a compact plain event whose time is spelled in or near a common spelling
    spelled = json.dumps(value, ensure_ascii=False).encode()
    line = _line('{"bytes":5}').replace(b'"2026-11-03T10:15:00Z"', spelled)
    assert DECODER.decode is not None
    event = DECODER.decode(line)
    # WHEN taken, nothing seen yet
    taken = event.take(line, {}, {})
    # THEN it is read with common_time's instant, in UTC, or left to read_usage when common_time
    # cannot read it (or the line spells it with an escape)
    moment = common_time(value)
    if moment is None or b"\\" in line:
        assert taken is None
    else:
        assert taken == moment and taken.tzinfo is UTC
