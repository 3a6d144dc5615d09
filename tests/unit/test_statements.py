"""Statements: a cell partial's usage per period, encoded canonically under a deterministic key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from meterline.markets import Market
from meterline.metering import Measurement, Metering
from meterline.periods import Period
from meterline.records import pack_book, unpack_book
from meterline.statements import Address, FinalMarker, StatementError, read_statement, statements_of
from meterline.usage import UsageBook
from tests.helpers import catalog

CATALOG = catalog(
    """
    meters:
      - key: ingress_gb
        event_type: kafka.ingress
        aggregation: sum
        value: gb
        group_by: [cluster, $region]
      - {key: cku_hours, event_type: kafka.status, aggregation: time_weighted, value: cku}
      - {key: schemas, event_type: schema.use, aggregation: unique_count, value: schema}
    plans:
      - key: standard
        effective_from: "2026-01-01"
        currency: USD
        charges:
          - {meter: ingress_gb, model: per_unit, unit_price: "0.10"}
    customers:
      - {tenant: org-42, plan: standard}
    """
)
METERING = Metering(CATALOG.meters_by_type, Market.of_cell("aws-eu-west-1"))
CELL = "aws-eu-west-1"
SOURCE = "period|2026-11|partial|000000|0000000000000000000000000000000000000001"


def book_of(events: list[tuple[str, str, dict[str, Any], datetime]]) -> UsageBook:
    book = UsageBook()
    for number, (tenant, event_type, data, time) in enumerate(events):
        readings = METERING.readings(event_type, data)
        measurements = [Measurement(meter, group, value) for (_, group), meter, value in readings]
        book.record(tenant, Period(time.year, time.month), measurements, time, f"e{number}")
    return book


def contents(book: UsageBook) -> dict[tuple[str, Period], dict[tuple[str, Any], Any]]:
    """A book's states as JSON, in no particular order."""
    return {
        tenant_period: {
            (key[0], key[1]): state.to_json() for key, state in book.states_of(*tenant_period).items()
        }
        for tenant_period in book.states
    }


NOVEMBER_DAY = datetime(2026, 11, 3, 10, tzinfo=UTC)
OCTOBER_DAY = datetime(2026, 10, 30, 10, tzinfo=UTC)
EVENTS = [
    ("org-42", "kafka.ingress", {"gb": "1.5", "cluster": "a"}, NOVEMBER_DAY),
    ("org-7", "schema.use", {"schema": "s-1"}, NOVEMBER_DAY),
    ("org-42", "kafka.status", {"cku": 2}, NOVEMBER_DAY),
    ("org-42", "kafka.ingress", {"gb": "2", "cluster": "b"}, OCTOBER_DAY),  # late usage of October
]


def test_a_partial_becomes_one_statement_per_period_its_usage_is_of() -> None:
    # GIVEN a partial holding November usage and a late October event
    statements = statements_of(CELL, SOURCE, book_of(EVENTS))

    # THEN two statements, keyed by cell, period and an id of their own
    assert [(s.cell, str(s.period)) for s in statements] == [(CELL, "2026-10"), (CELL, "2026-11")]
    assert statements[1].key == f"statements/{CELL}/2026-11/{statements[1].statement_id}.json"
    assert statements[0].statement_id != statements[1].statement_id


def test_publishing_the_same_partial_again_gives_the_same_keys_and_bytes() -> None:
    # GIVEN the partial as the cell's ledger stores it, read back twice (packed, then unpacked)
    packed = pack_book(book_of(EVENTS))
    first = statements_of(CELL, SOURCE, unpack_book(CATALOG, packed))
    again = statements_of(CELL, SOURCE, unpack_book(CATALOG, packed))

    # THEN byte for byte the same statements
    assert first == again


def test_two_partials_with_equal_usage_are_two_statements() -> None:
    # GIVEN two batches that happen to hold the same usage: each is usage, and counts
    book = book_of(EVENTS[:1])
    one = statements_of(CELL, SOURCE, book)
    other = statements_of(CELL, SOURCE.replace("1", "2"), book)
    assert one[0].key != other[0].key


def test_a_statement_reads_back_as_the_usage_it_was_made_of() -> None:
    book = book_of(EVENTS)
    november = statements_of(CELL, SOURCE, book)[1]
    statement, usage = read_statement(CATALOG, november.key, november.body)
    assert statement == november
    november_usage = UsageBook()
    for (tenant, period), segments in book.states.items():
        if period == Period(2026, 11):
            november_usage.merge_states((tenant, period), segments)
    assert contents(usage) == contents(november_usage)
    assert usage.states_of("org-42", Period(2026, 11))[("ingress_gb", ("a", "eu-west-1"))].to_json() == "1.5"


@pytest.mark.parametrize(
    ("key", "body", "problem"),
    [
        ("statements/x.json", b"{}", "not a statement key"),
        ("statements/aws-eu-west-1/2026-13/{ID}.json", b"{}", "'2026-13' is not a period"),
        ("statements/aws|x/2026-11/{ID}.json", b"{}", "'aws|x' is not a cell name"),
        ("statements/aws-eu-west-1/2026-11/a.json", b"{}", "'a' is not a statement id"),
        ("statements/aws-eu-west-1/2026-11/{ID}.json", b"not json", "not a statement"),
        ("statements/aws-eu-west-1/2026-11/{ID}.json", b'{"format": 9}', "format 9, this home reads 1"),
    ],
)
def test_what_is_not_a_statement_is_refused_in_one_line_naming_its_key(
    key: str, body: bytes, problem: str
) -> None:
    key = key.format(ID="0" * 32)
    with pytest.raises(StatementError) as raised:
        read_statement(CATALOG, key, body)
    assert str(raised.value).startswith(key.split("/")[0])
    assert problem in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_statement_filed_under_another_key_is_refused() -> None:
    # GIVEN a statement's bytes copied under another period's key
    november = statements_of(CELL, SOURCE, book_of(EVENTS))[1]
    moved = november.key.replace("2026-11", "2026-12")
    with pytest.raises(StatementError, match="another cell, period or id than its key"):
        read_statement(CATALOG, moved, november.body)


def test_a_statement_naming_a_meter_the_home_lacks_is_refused() -> None:
    november = statements_of(CELL, SOURCE, book_of(EVENTS))[1]
    body = november.body.replace(b'"schemas"', b'"topics"')
    with pytest.raises(StatementError, match="'topics'"):
        read_statement(CATALOG, november.key, body)


def test_the_final_marker_lists_the_periods_statements_and_reads_back() -> None:
    marker = FinalMarker(CELL, Period(2026, 11), ("a1", "b2"))  # ids as they come
    assert marker.key == f"statements/{CELL}/2026-11/final.json"
    assert FinalMarker.from_bytes(marker.key, marker.to_bytes()) == marker
    assert orjson.loads(marker.to_bytes())["statements"] == ["a1", "b2"]
    assert Address.of(marker.key).is_final
