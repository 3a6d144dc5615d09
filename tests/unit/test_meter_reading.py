"""The meter's read of a record (``records.usage_entry``): plain events on the fast path, the
rest by the exact reader, and the same usage item, byte for byte, whichever path read it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.catalog import Aggregation, Meter
from meterline.events import EventError
from meterline.metering import Metering
from meterline.records import _plain_entry, usage_entry, usage_record
from tests.unit.test_fuzz import EVENTS, FUZZ, METERING, TYPES


@st.composite
def plain_events(draw: st.DrawFn) -> bytes:
    """Compact events of text and integers, in the time spellings producers write: what the meter
    reads on its fast path, with values at and past its edges (negative, missing, 64 bits)."""
    data = draw(
        st.dictionaries(
            st.sampled_from(["bytes", "cluster", "level", "user", "gb", "method", "route", "x"]),
            st.one_of(
                st.integers(-3, 10**6), st.sampled_from([2**63 - 1, 2**64 - 1, -(2**63)]), st.text(max_size=4)
            ),
            max_size=4,
        )
    )
    time = draw(
        st.sampled_from(["00", "00.000", "00.120", "59.999", "00.000000", "00.000100", "59.999999", "60"])
    )
    event = {"specversion": "1.0", "id": f"e{draw(st.integers(0, 3))}", "source": "s/1"}
    event |= {"type": draw(TYPES)[1:-1], "subject": draw(st.sampled_from(["org-42", "org-7", "ö"]))}
    event |= {"time": f"2026-11-{draw(st.sampled_from(['01', '30']))}T23:59:{time}Z", "data": data}
    line = orjson.dumps(event)
    return line + b"\n" if draw(st.booleans()) else line


@FUZZ
@given(raw=st.one_of(plain_events(), EVENTS))
def test_the_meter_makes_the_usage_item_the_exact_reader_makes_or_rejects_it_for_the_same_reason(
    raw: bytes,
) -> None:
    # GIVEN any input, plain events among them
    # WHEN the meter reads it (plain events on its fast path) and the exact reader reads it
    readings: list[Any] = []
    try:
        key, time, item = usage_entry(METERING, raw, "usage.events|0|1")
        readings.append((key, time, item))
    except EventError as error:
        readings.append(error.reason)
    try:
        usage, item = usage_record(METERING, raw, "usage.events|0|1")
        readings.append((usage.key, usage.time, item))
    except EventError as error:
        readings.append(error.reason)
    # THEN both make the same usage item, byte for byte, or reject the input for the same reason
    assert readings[0] == readings[1]


def test_a_compact_plain_event_is_read_on_the_fast_path_into_the_item_the_exact_reader_makes() -> None:
    # GIVEN a compact ingress event of text and integers
    line = orjson.dumps(
        {"specversion": "1.0", "id": "e1", "source": "s", "type": "kafka.ingress", "subject": "org-42"}
        | {"time": "2026-11-03T10:15:00.120Z", "data": {"bytes": 1048576, "cluster": "lkc-1"}}
    )
    # WHEN the meter reads it
    entry = usage_entry(METERING, line, "usage.events|0|1")
    # THEN it took the fast path, measuring the bytes as sent, and made the exact reader's item
    assert _plain_entry(METERING, line, "usage.events|0|1") == entry
    assert orjson.loads(entry[2]["m"]) == [["ingress_gb", ["lkc-1"], {"$d": "1048576"}]]
    usage, item = usage_record(METERING, line, "usage.events|0|1")
    assert entry == (usage.key, usage.time, item)


def test_meters_whose_keys_spell_code_are_read_on_the_fast_path_as_the_exact_reader_reads_them() -> None:
    # GIVEN meters whose value and group keys would be code were they written into the fast
    # path's generated source (it passes them as values)
    odd = 'x") or __import__("os").abort() or ("'
    meters = (
        Meter("odd_sum", "odd", Aggregation.SUM, (odd,), group_by=(odd + "g", "\n")),
        Meter("odd_users", "odd", Aggregation.UNIQUE_COUNT, (odd,)),
        Meter("odd_peak", "odd", Aggregation.MAX, (odd,)),
        Meter("odd_calls", "odd", Aggregation.COUNT, None),
    )
    metering = Metering({"odd": meters})
    line = orjson.dumps(
        {"specversion": "1.0", "id": "e1", "source": "s", "type": "odd", "subject": "org-42"}
        | {"time": "2026-11-03T10:15:00Z", "data": {odd: 7, odd + "g": "a", "\n": "b"}}
    )
    # WHEN the meter reads an event of that type
    entry = usage_entry(metering, line, "usage.events|0|1")
    # THEN it took the fast path and made the exact reader's item, reading those keys as data keys
    assert _plain_entry(metering, line, "usage.events|0|1") == entry
    usage, item = usage_record(metering, line, "usage.events|0|1")
    assert entry == (usage.key, usage.time, item)
    assert orjson.loads(item["m"]) == [
        ["odd_sum", ["a", "b"], {"$d": "7"}],
        ["odd_users", [], "7"],
        ["odd_peak", [], {"$d": "7"}],
        ["odd_calls", [], None],
    ]


def test_an_event_repeating_a_key_is_rejected_as_the_exact_reader_rejects_it_whatever_it_spells() -> None:
    # GIVEN ingress events whose data repeats a key (so their content is shorter than the line),
    # with a value that spells the start of a canonical content ({"data":{), padded so that it
    # falls, in turn, at every place where a content as long as the line would start
    event = b'{"specversion":"1.0","id":"e1","source":"s","type":"kafka.ingress","subject":"org-42",'
    event += b'"time":"2026-11-03T10:15:00Z","data":{"bytes":5,"cluster":"%b","cluster":"%b"}}'
    for padding in range(60):
        for first, second in ((b"c", b"x" * padding + b'{\\"data\\":{'), (b"x" * padding, b"c")):
            line = event % (first, second)
            # WHEN the meter reads one, and the exact reader
            with pytest.raises(EventError) as meter:
                usage_entry(METERING, line, "usage.events|0|1")
            with pytest.raises(EventError) as exact:
                usage_record(METERING, line, "usage.events|0|1")
            # THEN its fast path declines it, and it is rejected for the exact reader's reason
            assert _plain_entry(METERING, line, "usage.events|0|1") is None
            assert meter.value.reason == exact.value.reason
