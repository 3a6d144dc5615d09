"""Instants spelled from their known text are spelled as ``isoformat`` would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from meterline.instants import isoformat_text, learn, spelled, spellings
from meterline.records import AcceptedUsage

OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-3))])
TIMES = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS)


@given(TIMES)
def test_what_isoformat_writes_is_taken_as_its_spelling(time: datetime) -> None:
    # GIVEN a time with an offset WHEN isoformat writes it THEN its text is known to be that spelling
    assert isoformat_text(time.isoformat())


@given(TIMES, st.sampled_from(["Z", ".000", ".000000", " ", "-00:00", ",", "basic"]))
def test_a_text_is_taken_as_a_spelling_only_if_isoformat_writes_it_back(time: datetime, change: str) -> None:
    # GIVEN another spelling of the time, as fromisoformat reads it
    text = time.isoformat()
    base, offset = text[:-6], text[-6:]
    if change == "Z":
        text = base + "Z"
    elif change in (".000", ".000000"):
        text = base.split(".")[0] + change + offset
    elif change == " ":
        text = text.replace("T", " ")
    elif change == "-00:00":
        text = base + "-00:00"
    elif change == ",":
        text = text.replace(".", ",")
    else:
        text = text.replace("-", "", 2).replace(":", "", 2)
    # WHEN it is checked THEN it passes only if reading and writing it again gives the same text
    if isoformat_text(text):
        assert datetime.fromisoformat(text).isoformat() == text


def test_a_time_is_spelled_from_its_known_text_only_within_the_block_and_only_for_that_object() -> None:
    # GIVEN a time known by a (deliberately different) text, and an equal time that is another object
    time = datetime(2026, 11, 3, 4, 5, 6, tzinfo=UTC)
    twin = datetime(2026, 11, 3, 9, 35, 6, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    with spellings([(time, "known"), (twin, None)]):
        # WHEN both are spelled THEN the known object gets its text, the other its own isoformat
        assert (spelled(time), spelled(twin)) == ("known", twin.isoformat())
    # AND after the block the time is spelled by isoformat again
    assert spelled(time) == time.isoformat()


def test_usage_read_from_its_item_knows_its_time_text_only_when_it_is_isoformat() -> None:
    # GIVEN usage items whose time is written by isoformat, and one written with a Z
    item = {"subject": "t", "source": "s", "id": "e", "fp": b"f", "m": b"[]", "at": "d"}
    written = AcceptedUsage.from_item({**item, "time": "2026-11-03T04:05:06.250000+00:00"})
    zulu = AcceptedUsage.from_item({**item, "time": "2026-11-03T04:05:06.25Z"})
    # THEN the first keeps its text as the time's spelling, the second leaves it to isoformat
    assert written.stamp == "2026-11-03T04:05:06.250000+00:00"
    assert zulu.stamp is None and zulu.time == written.time


def test_a_time_read_from_a_ledger_is_known_by_its_text_only_while_learning() -> None:
    # GIVEN times read from texts, one isoformat's spelling and one with a Z
    text, zulu = "2026-11-03T04:05:06+00:00", "2026-11-03T04:05:06Z"
    read, read_zulu, outside = (datetime.fromisoformat(t) for t in (text, zulu, text))
    learn(outside, "not learnt")  # outside a learning block nothing is kept
    with spellings(learn=True):
        # WHEN they are learnt within a learning block
        learn(read, text)
        learn(read_zulu, zulu)
        # THEN the first is spelled by its text, the Z one (not isoformat's) by isoformat
        assert [id(time) for time in _known()] == [id(read)]
        assert (spelled(read_zulu), spelled(outside)) == (text, text)
    assert _known() == []


def _known() -> list[datetime]:
    from meterline import instants

    return [time for time, _ in instants._KNOWN.values()]
