"""SPEC §3 aggregations, divide_by and group_by, from events to the quantity on the invoice line.

Each meter is priced per unit at 1, so a line's quantity is the aggregation's result.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from meterline.catalog import Catalog
from meterline.periods import Period
from tests.helpers import NOVEMBER, catalog, event, invoice_of, rate


def one_meter(aggregation: str, *, value: str | None = "v", extra: str = "") -> Catalog:
    value_field = f", value: {value}" if value else ""
    return catalog(
        f"""
        meters: [{{key: m, event_type: t, aggregation: {aggregation}{value_field}{extra}}}]
        plans:
          - {{key: p, version: 1, effective_from: "2026-01-01", currency: USD,
             charges: [{{meter: m, model: per_unit, unit_price: "1"}}]}}
        customers: [{{tenant: org-42, plan: p}}]
        """
    )


def reading(event_id: str, value: Any, time: str = "2026-11-03T10:15:00Z", **data: Any) -> str:
    return event(event_id, {"v": value, **data}, type="t", time=time)


Quantities = list[tuple[dict[str, Any], str]]


def quantities(plans: Catalog, lines: list[str], period: Period = NOVEMBER) -> Quantities:
    return [(line["group"], line["quantity"]) for line in invoice_of(rate(plans, lines, period))["lines"]]


def test_sum_adds_numbers_and_decimal_strings_exactly() -> None:
    lines = [reading("a", "1.5"), reading("b", 2.25), reading("c", 3)]
    assert quantities(one_meter("sum"), lines) == [({}, "6.75")]  # 1.5 + 2.25 + 3


def test_count_counts_accepted_events_and_needs_no_value() -> None:
    lines = [event(i, {}, type="t") for i in ("a", "b", "c")]
    assert quantities(one_meter("count", value=None), lines) == [({}, "3")]


def test_max_and_min_take_the_extremes_including_negatives() -> None:
    lines = [reading("a", 5), reading("b", "-2"), reading("c", "7.5")]
    assert quantities(one_meter("max"), lines) == [({}, "7.5")]  # max(5, -2, 7.5)
    assert quantities(one_meter("min"), lines) == [({}, "-2")]  # min(5, -2, 7.5)


def test_unique_count_compares_values_as_text_so_5_and_string_5_are_one() -> None:
    # GIVEN 5, "5", "u-1" twice: the distinct texts are {"5", "u-1"}
    lines = [reading("a", 5), reading("b", "5"), reading("c", "u-1"), reading("d", "u-1")]
    assert quantities(one_meter("unique_count"), lines) == [({}, "2")]


def test_latest_takes_the_greatest_time_and_breaks_ties_by_the_greatest_id() -> None:
    # GIVEN two readings at the latest instant, ids "c" (3) and "b" (2), "c" first; and an earlier one
    lines = [
        reading("c", 3, "2026-11-20T00:00:00Z"),
        reading("z", 9, "2026-11-10T00:00:00Z"),  # greatest id, but earlier
        reading("b", 2, "2026-11-20T00:00:00Z"),
    ]
    # THEN the tie at 20 Nov goes to id "c" > "b": 3
    assert quantities(one_meter("latest"), lines) == [({}, "3")]
    assert quantities(one_meter("latest"), list(reversed(lines))) == [({}, "3")]


def test_time_weighted_holds_each_sample_until_the_next_and_the_last_until_period_end() -> None:
    # GIVEN samples at 1 Nov 00:00 (10), 11 Nov 00:00 (4), 30 Nov 12:00 (6); November has 720 hours
    lines = [
        reading("a", 10, "2026-11-01T00:00:00Z"),
        reading("c", 6, "2026-11-30T12:00:00Z"),
        reading("b", 4, "2026-11-11T00:00:00Z"),
    ]
    # THEN 10 × 240 h + 4 × 468 h (11 Nov → 30 Nov 12:00 = 19.5 days) + 6 × 12 h = 2400 + 1872 + 72 = 4344
    assert quantities(one_meter("time_weighted"), lines) == [({}, "4344")]


def test_time_weighted_holds_nothing_before_the_first_sample() -> None:
    # GIVEN one sample of 2 at 16 Nov 00:00: it holds 15 days = 360 h → 720
    assert quantities(one_meter("time_weighted"), [reading("a", 2, "2026-11-16T00:00:00Z")]) == [({}, "720")]


def test_time_weighted_sample_at_a_month_boundary_belongs_to_the_new_month() -> None:
    # GIVEN 5 from 30 Nov 00:00, and 100 at exactly 1 Dec 00:00 UTC
    plans = one_meter("time_weighted")
    lines = [reading("a", 5, "2026-11-30T00:00:00Z"), reading("b", 100, "2026-12-01T00:00:00Z")]

    # THEN November: 5 × 24 h = 120; December (31 days): 100 × 744 h = 74400
    assert quantities(plans, lines, Period(2026, 11)) == [({}, "120")]
    assert quantities(plans, lines, Period(2026, 12)) == [({}, "74400")]


def test_time_weighted_holds_to_the_end_of_a_leap_february() -> None:
    # GIVEN 1 from 1 Feb 2028 00:00: February 2028 has 29 days = 696 hours
    lines = [reading("a", 1, "2028-02-01T00:00:00Z")]
    assert quantities(one_meter("time_weighted"), lines, Period(2028, 2)) == [({}, "696")]


def test_time_weighted_counts_fractions_of_an_hour_exactly() -> None:
    # GIVEN 3 held for 20 minutes, then 0 until the end: 3 × 1/3 h = 1
    lines = [reading("a", 3, "2026-11-30T23:00:00Z"), reading("b", 0, "2026-11-30T23:20:00Z")]
    assert quantities(one_meter("time_weighted"), lines) == [({}, "1")]


def test_time_weighted_groups_hold_independently() -> None:
    # GIVEN group x from 1 Nov and group y from 16 Nov, each of value 1
    plans = one_meter("time_weighted", extra=", group_by: [g]")
    lines = [reading("a", 1, "2026-11-01T00:00:00Z", g="x"), reading("b", 1, "2026-11-16T00:00:00Z", g="y")]
    # THEN y does not cut x short: x = 720 h, y = 360 h
    assert quantities(plans, lines) == [({"g": "x"}, "720"), ({"g": "y"}, "360")]


def test_divide_by_divides_the_aggregated_quantity_exactly() -> None:
    # GIVEN 1.5e9 + 0.5e9 bytes and divide_by 1e9: 2 GB
    plans = one_meter("sum", extra=', divide_by: "1000000000"')
    assert quantities(plans, [reading("a", 1500000000), reading("b", 500000000)]) == [({}, "2")]


def test_divide_by_that_does_not_terminate_is_priced_exactly() -> None:
    # GIVEN 1 unit divided by 3, at 3 per unit
    plans = catalog(
        """
        meters: [{key: m, event_type: t, aggregation: sum, value: v, divide_by: "3"}]
        plans:
          - {key: p, version: 1, effective_from: "2026-01-01", currency: USD,
             charges: [{meter: m, model: per_unit, unit_price: "3"}]}
        customers: [{tenant: org-42, plan: p}]
        """
    )
    line = invoice_of(rate(plans, [reading("a", 1)]))["lines"][0]
    # THEN the quantity prints to 18 places but the amount is 1/3 × 3 = 1.00, not 0.999…
    assert line["quantity"] == "0.333333333333333333"
    assert line["amount"] == "1.00"


def test_group_by_splits_lines_and_a_missing_key_groups_as_null() -> None:
    # GIVEN clusters a, b, one event without the key and one with an explicit null
    plans = one_meter("sum", extra=", group_by: [cluster]")
    lines = [
        reading("1", 1, cluster="b"),
        reading("2", 2),
        reading("3", 3, cluster="a"),
        reading("4", 4, cluster=None),
        reading("5", 5, cluster="a"),
    ]
    # THEN one line per group, by group value with null last: a = 3 + 5, b = 1, null = 2 + 4
    assert quantities(plans, lines) == [
        ({"cluster": "a"}, "8"),
        ({"cluster": "b"}, "1"),
        ({"cluster": None}, "6"),
    ]


def test_group_by_on_two_keys_keeps_their_order() -> None:
    plans = one_meter("count", value=None, extra=", group_by: [region, cluster]")
    lines = [event("1", {"region": "eu", "cluster": "c1"}, type="t"), event("2", {"cluster": "c1"}, type="t")]
    assert quantities(plans, lines) == [
        ({"region": "eu", "cluster": "c1"}, "1"),
        ({"region": None, "cluster": "c1"}, "1"),
    ]


def test_group_values_of_different_types_order_the_same_whatever_the_event_order() -> None:
    # GIVEN the same group text as a number and as a string
    plans = one_meter("sum", extra=", group_by: [g]")
    lines = [reading("1", 1, g=5), reading("2", 2, g="5")]

    # WHEN the file is rated in both orders
    forward = invoice_of(rate(plans, lines))["lines"]
    backward = invoice_of(rate(plans, list(reversed(lines))))["lines"]

    # THEN the lines come out in one order
    assert forward == backward
    assert len(forward) == 2


def test_latest_is_the_same_whatever_the_order_when_two_sources_send_the_same_time_and_id() -> None:
    # GIVEN two distinct events (other sources) with the same time and id but other values
    lines = [
        event("a", {"v": 1}, type="t", source="s1", time="2026-11-20T00:00:00Z"),
        event("a", {"v": 2}, type="t", source="s2", time="2026-11-20T00:00:00Z"),
    ]
    # THEN the file's order does not pick the value
    plans = one_meter("latest")
    assert quantities(plans, lines) == quantities(plans, list(reversed(lines)))


@pytest.mark.parametrize(("first", "second"), [(5, 5.0), (1, True), (0, False), ("5", 5)])
def test_group_lines_are_the_same_whatever_the_order_of_events(first: Any, second: Any) -> None:
    # GIVEN two events whose group values are equal in Python but differ in JSON (5 and 5.0, 1 and true)
    plans = one_meter("sum", extra=", group_by: [g]")
    lines = [reading("1", 1, g=first), reading("2", 2, g=second)]

    # WHEN the file is rated in both orders
    forward = invoice_of(rate(plans, lines))["lines"]
    backward = invoice_of(rate(plans, list(reversed(lines))))["lines"]

    # THEN the lines are the same, compared as JSON text (in Python, 1 == True)
    assert json.dumps(forward) == json.dumps(backward)
