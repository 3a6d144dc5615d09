"""SPEC §1: which events are rejected and why, and how valid ones are read (exact numbers, UTC)."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterline.events import EVENT_REASONS, EventError, Reason, common_time, parse_event, parse_time
from meterline.metering import Metering
from meterline.records import AcceptedUsage, usage_record
from tests.helpers import BadEvent, bad_events, catalog, corpus_catalog, event, invoice_of, rate

CORPUS = bad_events()


def test_the_corpus_covers_every_reason_with_at_least_thirty_cases() -> None:
    assert len(CORPUS) >= 30
    assert {case.reason for case in CORPUS} == {reason.value for reason in EVENT_REASONS}


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: f"{case.reason}/{case.name}")
def test_a_bad_event_is_rejected_with_its_reason_and_nothing_else(case: BadEvent) -> None:
    # GIVEN the corpus catalog and one bad case (a conflict case: the event that stands, then the bad one)
    # WHEN the file is rated
    summary = rate(corpus_catalog(), case.lines)["summary"]

    # THEN exactly the last line is rejected, with the expected reason; the rest are accepted
    expected = {reason.value: 0 for reason in EVENT_REASONS} | {case.reason: 1}
    assert summary["rejected_by_reason"] == expected
    assert summary["rejected"] == 1
    assert summary["accepted"] == len(case.lines) - 1
    assert summary["received"] == len(case.lines)


@pytest.mark.parametrize(
    "case",
    [case for case in CORPUS if case.reason in ("malformed", "invalid_envelope")],
    ids=lambda case: case.name,
)
def test_parse_event_names_the_reason_in_a_one_line_error(case: BadEvent) -> None:
    # GIVEN an event that fails before any meter looks at it
    # WHEN it is parsed
    with pytest.raises(EventError) as caught:
        parse_event(case.raw.rstrip(b"\n"))

    # THEN the error carries the reason code and reads as one line
    assert caught.value.reason.value == case.reason
    assert "\n" not in str(caught.value)


def test_fractional_json_numbers_are_read_as_exact_decimals() -> None:
    # GIVEN a value written as a JSON number with a fraction and an integer past 64 bits
    raw = event("e1", {"bytes": 0.1, "big": 123456789012345678901234567890, "cluster": "c"})

    # WHEN it is parsed
    parsed = parse_event(raw)

    # THEN both are exact: Decimal from the text, int without loss
    assert parsed.data["bytes"] == Decimal("0.1")
    assert type(parsed.data["bytes"]) is Decimal
    assert parsed.data["big"] == 123456789012345678901234567890


def test_point_one_plus_point_two_totals_exactly_point_three() -> None:
    # GIVEN a sum meter and two events of 0.1 and 0.2 (JSON numbers, which a float would get wrong)
    plans = catalog(
        """
        meters: [{key: data, event_type: t, aggregation: sum, value: v}]
        plans:
          - {key: p, version: 1, effective_from: "2026-01-01", currency: USD,
             charges: [{meter: data, model: per_unit, unit_price: "1"}]}
        customers: [{tenant: org-42, plan: p}]
        """
    )
    lines = [
        '{"specversion":"1.0","id":"a","source":"s","type":"t","subject":"org-42",'
        '"time":"2026-11-01T00:00:00Z","data":{"v":0.1}}',
        '{"specversion":"1.0","id":"b","source":"s","type":"t","subject":"org-42",'
        '"time":"2026-11-01T00:00:00Z","data":{"v":0.2}}',
    ]

    # WHEN rated
    line = invoice_of(rate(plans, lines))["lines"][0]

    # THEN the quantity is 0.3 exactly (0.1 + 0.2), not 0.30000000000000004
    assert line["quantity"] == "0.3"
    assert line["amount"] == "0.30"


def test_time_with_an_offset_is_converted_to_utc() -> None:
    # GIVEN 23:30 on 30 November at UTC-01:00, which is 00:30 on 1 December in UTC
    parsed = parse_event(event("e1", {"bytes": 1}, time="2026-11-30T23:30:00-01:00"))

    # THEN the event's instant and period are December's
    assert parsed.time == datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    assert str(parsed.period) == "2026-12"


def test_time_keeps_microseconds_and_drops_later_digits() -> None:
    parsed = parse_event(event("e1", {"bytes": 1}, time="2026-11-03T10:15:00.123456789Z"))
    assert parsed.time == datetime(2026, 11, 3, 10, 15, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize("level", ["-5", -5, "-0.25"])
def test_a_negative_value_is_accepted_by_max_min_and_latest(level: object) -> None:
    # GIVEN the gauge type, measured by max, min and latest
    lines = [event("g1", {"level": level}, type="gauge.reading")]

    # WHEN rated
    summary = rate(corpus_catalog(), lines)["summary"]

    # THEN it is accepted
    assert summary["accepted"] == 1
    assert summary["rejected"] == 0


def spelled(value: str) -> str:
    """Event e1 whose `bytes` is the JSON text `value`, spelled exactly so (json.dumps would respell it)."""
    line = event("e1", {"bytes": 0, "cluster": "c"})
    assert line.count('"bytes":0') == 1
    return line.replace('"bytes":0', f'"bytes":{value}')


@pytest.mark.parametrize(
    ("first", "second", "outcome"),
    [
        ("5", "5.0", "duplicates"),  # same number, other spelling
        ("5", '"5"', "conflict"),  # a number and a string differ
        ("0.1", "0.10", "duplicates"),
    ],
)
def test_content_compares_numbers_by_exact_value(first: str, second: str, outcome: str) -> None:
    # GIVEN two events with the same dedup key whose value is spelled differently
    lines = [spelled(first), spelled(second)]
    assert lines[0] != lines[1]

    # WHEN rated
    summary = rate(corpus_catalog(), lines)["summary"]

    # THEN equal numbers make a duplicate; a number and a string make a conflict
    assert summary["accepted"] == 1
    if outcome == "duplicates":
        assert summary["duplicates"] == 1
    else:
        assert summary["rejected_by_reason"]["conflict"] == 1


@pytest.mark.parametrize("value", ["1e999999999", "1e-999999999", "-1E+400000000"])
def test_a_value_too_large_or_too_fine_to_price_is_an_invalid_value(value: str) -> None:
    # GIVEN a finite decimal whose exact fraction would need a billion digits (rating it never ends)
    parsed = parse_event(event("e1", {"level": value}, type="gauge.reading"))

    # WHEN its meters read it
    with pytest.raises(EventError) as caught:
        Metering(corpus_catalog().meters_by_type).measure(parsed)

    # THEN it is rejected as an invalid value, not accepted
    assert caught.value.reason is Reason.INVALID_VALUE


def test_a_byte_order_mark_before_an_event_is_skipped() -> None:
    # GIVEN an event, and the same event after a UTF-8 byte order mark (as a Windows tool writes it)
    line = event("e1", {"bytes": 1, "cluster": "c"})
    with_mark = "\ufeff" + line
    # WHEN read and rated
    summary = rate(corpus_catalog(), [line, with_mark.encode()])["summary"]
    # THEN it is the same event: the second a duplicate of the first
    assert parse_event(with_mark) == parse_event(line)
    assert (summary["accepted"], summary["duplicates"]) == (1, 1)


@pytest.mark.parametrize("time", ["2026-12-31T23:59:60Z", "2026-12-31T18:59:60.5-05:00"])
def test_a_leap_second_reads_as_the_last_microsecond_of_its_minute_in_its_own_period(time: str) -> None:
    parsed = parse_event(event("e1", {"bytes": 1}, time=time))
    assert parsed.time == datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert str(parsed.period) == "2026-12"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("9" * 38, Decimal("9" * 38)),
        ("-" + "9" * 38, Decimal("-" + "9" * 38)),
        ("1" + "0" * 125, Decimal(10) ** 125),
        (
            "9.9999999999999999999999999999999999999e125",
            Decimal("9.9999999999999999999999999999999999999e125"),
        ),
        ("1e-130", Decimal("1e-130")),
        (
            "0.1234567890123456789012345678901234567800000",
            Decimal("0.12345678901234567890123456789012345678"),
        ),
        ("0e999999999999", Decimal(0)),
    ],
)
@pytest.mark.parametrize("as_string", [False, True])
def test_a_number_at_the_bounds_is_read_exactly(text: str, value: Decimal, as_string: bool) -> None:
    # GIVEN a gauge reading at the edge of 38 digits and of the magnitude range, as number or string
    spelled_value = f'"{text}"' if as_string else text
    line = event("e1", {"level": 0}, type="gauge.reading").replace('"level":0', f'"level":{spelled_value}')
    # WHEN its meters read it THEN they take it exactly
    parsed = parse_event(line)
    [reading, *_] = Metering(corpus_catalog().meters_by_type).measure(parsed)
    assert reading.value == value


@pytest.mark.parametrize("fraction", ["", ".5"])
def test_nesting_of_254_levels_is_read_and_one_more_is_malformed_on_either_path(fraction: str) -> None:
    # GIVEN events nested 254 and 255 levels deep, read by orjson or (with a fraction) exactly
    def nested(levels: int) -> str:
        lists = levels - 2  # the event object and data are the first two levels
        return event("e1", {"bytes": 1, "cluster": "c"}).replace(
            '"bytes":1', f'"bytes":1{fraction},"x":' + "[" * lists + "]" * lists
        )

    # THEN the first is an event, the second malformed
    assert parse_event(nested(254)).data["bytes"] == Decimal(f"1{fraction}")
    with pytest.raises(EventError) as caught:
        parse_event(nested(255))
    assert caught.value.reason is Reason.MALFORMED


def test_a_group_value_past_64_bits_is_metered_stored_and_invoiced_as_its_digits() -> None:
    # GIVEN an ingress event whose cluster is an integer past 64 bits
    big = 123456789012345678901234567890
    line = event("e1", {"bytes": 10**9, "cluster": big})
    plans = catalog(
        """
        meters: [{key: gb, event_type: kafka.ingress, aggregation: sum, value: bytes, group_by: [cluster]}]
        plans:
          - {key: p, version: 1, effective_from: "2026-01-01", currency: USD,
             charges: [{meter: gb, model: per_unit, unit_price: "1"}]}
        customers: [{tenant: org-42, plan: p}]
        """
    )
    # WHEN its usage item is made, stored and read back, and the file is rated
    usage, item = usage_record(Metering(plans.meters_by_type), line.encode(), "usage.events|0|1")
    # THEN the group survives the ledger, and the invoice line names it by its digits
    assert AcceptedUsage.from_item(item).measurements == usage.measurements
    assert usage.measurements[0][1] == (big,)
    [line_json] = invoice_of(rate(plans, [line]))["lines"][:1]
    assert line_json["group"] == {"cluster": str(big)}


def test_fractions_differing_past_the_28th_digit_are_different_groups_and_contents() -> None:
    # GIVEN two readings that agree on 28 digits and differ at the 37th
    low, high = "0.1234567890123456789012345678901234567", "0.1234567890123456789012345678901234568"
    lines = [
        event("a", {"bytes": 1, "cluster": 0}).replace('"cluster":0', f'"cluster":{low}'),
        event("b", {"bytes": 1, "cluster": 0}).replace('"cluster":0', f'"cluster":{high}'),
    ]
    # WHEN measured THEN they group apart (Decimal.normalize() would have rounded both to 28 digits)
    metering = Metering(corpus_catalog().meters_by_type)
    groups = {metering.measure(parse_event(line))[0].group for line in lines}
    assert groups == {(Decimal(low),), (Decimal(high),)}


TIME_TEMPLATES = (
    "2026-11-24T15:48:49.600Z",
    "2026-11-24T15:48:49Z",
    "2026-11-24T15:48:49.123456Z",
    "2026-11-24T15:48:49.600+01:00",
    "2026-11-24T15:48:49-00:00",
    "0001-01-01T00:30:00.123456+01:00",
)


@given(
    template=st.sampled_from(TIME_TEMPLATES),
    changes=st.lists(
        st.tuples(st.integers(0, 31), st.sampled_from([*string.printable, "٣", "１", "é"])), max_size=3
    ),
)
def test_the_common_time_reader_reads_only_what_parse_time_reads_and_alike(
    template: str, changes: list[tuple[int, str]]
) -> None:
    # GIVEN a timestamp in the common spelling, with up to three characters changed
    text = list(template)
    for position, character in changes:
        if position < len(text):
            text[position] = character
    value = "".join(text)

    # WHEN the fast reader reads it
    moment = common_time(value)

    # THEN it reads nothing parse_time would not, and the same instant when it reads it
    if moment is not None:
        assert moment == parse_time(value) and moment.tzinfo is UTC
