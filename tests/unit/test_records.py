"""Packed usage books read back as the states they were packed from."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.events import common_time
from meterline.periods import Period
from meterline.pipeline.outcomes import outcome_key
from meterline.records import Delivery, event_digest, framed, key_part, ledger_time, pack_book, unpack_book
from meterline.usage import UsageBook, fold
from tests.pipeline.test_cell import CATALOG


def test_a_book_grouped_by_a_fractional_number_unpacks_to_the_same_quantities() -> None:
    # GIVEN a book whose ingress is grouped by cluster 1.5 (a Decimal group value) and cluster "a"
    period = Period(2026, 10)
    meter = CATALOG.meters["ingress_gb"]
    book = UsageBook()
    states = book.states_of("org-1", period)
    time = datetime(2026, 10, 2, tzinfo=UTC)
    fold(states, [(("ingress_gb", (Decimal("1.5"),)), meter, Decimal(3 * 10**9))], time, "e1")
    fold(states, [(("ingress_gb", ("a",)), meter, Decimal(10**9))], time, "e2")
    # WHEN it is packed and unpacked
    unpacked = unpack_book(CATALOG, pack_book(book))
    # THEN the group keeps its Decimal value and every quantity is the packed one
    assert unpacked.quantities(CATALOG, "org-1", period) == book.quantities(CATALOG, "org-1", period)
    assert ("ingress_gb", (Decimal("1.5"),)) in unpacked.states_of("org-1", period)


# --- keys built from text a producer chose are injective -----------------------------------------

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=30)
"""Any string, lone surrogates, NUL, '|', '%' and the characters stores refuse included."""
SEPARATORS = st.text(st.sampled_from("\x00|%:/#\\?0123456789a"), max_size=8)
"""Short strings of the characters a careless encoding would collide on."""
TEXT = st.one_of(ANY_TEXT, SEPARATORS)


def unframed(data: bytes) -> tuple[str, ...]:
    """Reads ``framed`` back: proof that it loses nothing."""
    parts = []
    while data:
        length, _, rest = data.partition(b":")
        size = int(length)
        parts.append(rest[:size].decode("utf-8", "surrogatepass"))
        data = rest[size:]
    return tuple(parts)


@settings(max_examples=300, deadline=None)
@given(key=st.tuples(TEXT, TEXT, TEXT))
def test_the_dedup_key_is_framed_so_that_it_reads_back_whole(key: tuple[str, str, str]) -> None:
    assert unframed(framed(key)) == key


@settings(max_examples=300, deadline=None)
@given(key=st.tuples(TEXT, TEXT, TEXT))
def test_the_event_digest_is_the_digest_of_the_framed_key(key: tuple[str, str, str]) -> None:
    # GIVEN any (subject, source, id)  WHEN its ledger key is made  THEN it digests the framed key
    assert event_digest(key) == hashlib.blake2b(framed(key), digest_size=16).hexdigest()


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(TEXT, max_size=5))
def test_any_number_of_parts_is_framed_so_that_they_read_back_whole(parts: list[str]) -> None:
    assert unframed(framed(tuple(parts))) == tuple(parts)


@settings(max_examples=500, deadline=None)
@given(
    spelled=st.one_of(
        st.from_regex(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6})?Z", fullmatch=True),
        st.tuples(
            st.sampled_from(["2026-11-30T23:59:59", "0001-01-01T00:00:00"]),
            st.sampled_from(
                ["", ".000", ".001", ".100", ".000000", ".000001", ".100000", ".999999", ".1", ".0000000"]
            ),
        ).map(lambda parts: parts[0] + parts[1] + "Z"),
        st.tuples(
            st.sampled_from(["2026-11-30T23:59:59", "2026-01-01T00:30:00", "0001-01-01T00:00:00"]),
            st.sampled_from(["", ".000", ".001", ".000000", ".999999"]),
            st.sampled_from(["+00:00", "-00:00", "+01:00", "-05:30", "+14:00"]),
        ).map("".join),
        st.text(st.sampled_from("0123456789-T:.Z+ "), min_size=19, max_size=32),
    )
)
def test_the_ledger_time_of_a_common_spelling_is_its_isoformat(spelled: str) -> None:
    # GIVEN any text in or near the spellings common_time reads
    moment = common_time(spelled)
    # WHEN common_time reads it THEN its ledger time is the instant's isoformat, read off the text
    if moment is not None:
        assert ledger_time(spelled, moment) == moment.isoformat()


@settings(max_examples=300, deadline=None)
@given(a=TEXT, b=TEXT, c=TEXT, d=TEXT)
def test_moving_a_separator_between_subject_source_and_id_makes_another_digest(
    a: str, b: str, c: str, d: str
) -> None:
    # GIVEN two keys whose parts joined with NUL are the same text (the old digest's collision)
    first, second = (a + "\x00" + b, c, d), (a, b + "\x00" + c, d)
    # THEN their digests differ
    assert event_digest(first) != event_digest(second)


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_a_key_part_reads_back_whole_and_holds_no_separator_or_refused_character(text: str) -> None:
    part = key_part(text)
    assert unquote(part, errors="surrogatepass") == text
    assert not set(part) & set("|/#\\?") and all(ord(c) >= 32 for c in part)


@settings(max_examples=300, deadline=None)
@given(topic=TEXT, partition=st.integers(0, 2**31), offset=st.integers(-1, 2**64), data=st.data())
def test_deliveries_and_their_outcome_keys_are_one_to_one(
    topic: str, partition: int, offset: int, data: st.DataObject
) -> None:
    # GIVEN two deliveries, the second often sharing the first's topic, partition or offset
    delivery = Delivery(topic, partition, offset)
    other = Delivery(
        data.draw(st.sampled_from([topic, topic + "|1", topic.rpartition("|")[0]]) | TEXT),
        data.draw(st.sampled_from([partition, partition + 1]) | st.integers(0, 99)),
        data.draw(st.sampled_from([offset, offset + 1]) | st.integers(0, 99)),
    )
    # THEN their texts and outcome keys are equal only if the deliveries are
    same = delivery == other
    assert (str(delivery) == str(other)) == same
    assert (outcome_key(delivery) == outcome_key(other)) == same
