"""SPEC §4 `meterline rate`: validate, dedup over the whole file, then the period; counts reconcile."""

from __future__ import annotations

from typing import Any

from tests.helpers import catalog, event, invoice_of, rate

PLANS = catalog(
    """
    meters: [{key: m, event_type: t, aggregation: sum, value: v}]
    plans:
      - {key: p, version: 1, effective_from: "2026-01-01", currency: USD,
         charges: [{meter: m, model: per_unit, unit_price: "1"}]}
    customers: [{tenant: org-42, plan: p}]
    """
)


def reading(event_id: str, value: Any, *, time: str = "2026-11-03T10:15:00Z", source: str = "s") -> str:
    return event(event_id, {"v": value}, type="t", time=time, source=source)


def reconciles(summary: dict[str, Any]) -> bool:
    parts = summary["accepted"] + summary["duplicates"] + summary["rejected"] + summary["out_of_period"]
    by_reason = sum(summary["rejected_by_reason"].values())
    return bool(summary["received"] == parts and summary["rejected"] == by_reason)


def test_a_mixed_file_is_counted_once_per_event_and_reconciles() -> None:
    # GIVEN 2 accepted, 1 duplicate, 1 conflict, 1 malformed, 1 unknown type, 1 out of period, 2 blank lines
    lines = [
        reading("a", 1),
        "",
        reading("b", 2),
        reading("a", 1),  # duplicate of a
        reading("b", 3),  # conflict with b: b's 2 stands
        "{not json",
        event("c", {"v": 1}, type="other"),
        "   \t",
        reading("d", 5, time="2026-10-31T23:59:59Z"),  # October
    ]

    # WHEN rated for November
    result = rate(PLANS, lines)

    # THEN blank lines are not received; the rest each land in one bucket
    summary = result["summary"]
    assert summary == {
        "received": 7,
        "accepted": 2,
        "duplicates": 1,
        "rejected": 3,
        "rejected_by_reason": {
            "malformed": 1,
            "invalid_envelope": 0,
            "unknown_type": 1,
            "invalid_value": 0,
            "conflict": 1,
            "unprocessable": 0,
        },
        "out_of_period": 1,
    }
    assert reconciles(summary)
    # AND the first of the conflicting pair stands: 1 + 2 = 3
    assert invoice_of(result)["lines"][0]["quantity"] == "3"


def test_a_conflict_never_replaces_the_event_that_stands_even_when_repeated() -> None:
    lines = [reading("a", 1), reading("a", 9), reading("a", 9), reading("a", 1)]
    result = rate(PLANS, lines)
    assert (result["summary"]["accepted"], result["summary"]["duplicates"]) == (1, 1)
    assert result["summary"]["rejected_by_reason"]["conflict"] == 2
    assert invoice_of(result)["lines"][0]["quantity"] == "1"


def test_a_rejected_event_never_enters_dedup() -> None:
    # GIVEN an invalid event, then a valid one with the same key
    lines = [reading("a", "not a number"), reading("a", 4)]
    result = rate(PLANS, lines)
    # THEN the valid one is accepted, not a conflict
    assert result["summary"]["rejected_by_reason"]["invalid_value"] == 1
    assert result["summary"]["accepted"] == 1
    assert invoice_of(result)["lines"][0]["quantity"] == "4"


def test_the_dedup_key_is_subject_source_and_id() -> None:
    # GIVEN the same id from two sources, and from the same source for two subjects
    lines = [
        reading("a", 1, source="s1"),
        reading("a", 2, source="s2"),
        event("a", {"v": 4}, type="t", source="s1", subject="org-7"),
    ]
    summary = rate(PLANS, lines)["summary"]
    # THEN all three are distinct events
    assert (summary["accepted"], summary["duplicates"], summary["rejected"]) == (3, 0, 0)


def test_dedup_runs_over_the_whole_file_before_the_period() -> None:
    # GIVEN an October event, its duplicate, and a conflicting one
    october = "2026-10-15T00:00:00Z"
    lines = [reading("a", 1, time=october), reading("a", 1, time=october), reading("a", 2, time=october)]
    summary = rate(PLANS, lines)["summary"]
    # THEN only the first counts as out of period; the repeats are duplicate and conflict
    assert (summary["out_of_period"], summary["duplicates"], summary["rejected"]) == (1, 1, 1)
    assert summary["accepted"] == 0
    assert reconciles(summary)


def test_a_duplicate_is_an_equal_event_whatever_its_key_order_or_spacing() -> None:
    first = (
        '{"specversion":"1.0","id":"a","source":"s","type":"t","subject":"org-42",'
        '"time":"2026-11-03T10:15:00Z","data":{"v":1}}'
    )
    second = (
        '{ "data": {"v": 1.0}, "time": "2026-11-03T10:15:00Z", "subject": "org-42", '
        '"type": "t", "source": "s", "id": "a", "specversion": "1.0" }'
    )
    summary = rate(PLANS, [first, second])["summary"]
    assert (summary["accepted"], summary["duplicates"]) == (1, 1)


def test_the_period_is_decided_in_utc_at_the_exact_boundary() -> None:
    lines = [
        reading("first", 1, time="2026-11-01T00:00:00Z"),  # November's first instant
        reading("last", 2, time="2026-11-30T23:59:59.999999Z"),  # November's last microsecond
        reading("next", 4, time="2026-12-01T00:00:00Z"),  # December
        reading("offset", 8, time="2026-12-01T00:30:00+01:00"),  # 23:30 on 30 Nov in UTC
    ]
    result = rate(PLANS, lines)
    assert result["summary"]["out_of_period"] == 1
    assert invoice_of(result)["lines"][0]["quantity"] == "11"  # 1 + 2 + 8


def test_an_empty_file_gives_zero_counts_and_invoices_for_customers() -> None:
    result = rate(PLANS, ["", "\n"])
    assert result["summary"]["received"] == 0
    assert invoice_of(result)["lines"] == []
    assert result["period"] == "2026-11"


def test_a_repeated_id_is_compared_under_its_own_key_whatever_the_spelling() -> None:
    # GIVEN one id under two sources (bytes: the fast path), each repeated, once spelled otherwise
    s1, s2 = reading("a", 1, source="s1").encode(), reading("a", 2, source="s2").encode()
    s2_spaced = s2.replace(b",", b", ")
    lines = [s1, s2, s2, s2_spaced, reading("a", 3, source="s2").encode(), s1]
    summary = rate(PLANS, lines)["summary"]
    # THEN two events stand, three repeats are duplicates and the other value under s2 conflicts
    assert (summary["accepted"], summary["duplicates"]) == (2, 3)
    assert summary["rejected_by_reason"]["conflict"] == 1
