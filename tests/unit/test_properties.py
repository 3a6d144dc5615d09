"""Properties of the rating core that must hold for any input (Hypothesis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import orjson
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from meterline.amendments import FIGURES
from meterline.catalog import (
    Aggregation,
    Catalog,
    Charge,
    Customer,
    Meter,
    Plan,
    PricingModel,
    Subscription,
    Tier,
)
from meterline.credits import Credits
from meterline.events import parse_event
from meterline.metering import Metering
from meterline.money import minor_units, round_money
from meterline.offline import rate_lines
from meterline.periods import Period
from meterline.pricing import graduated, price, volume
from meterline.rating import rate_term
from meterline.terms import terms
from meterline.timeweighted import TimeWeightedState
from meterline.usage import UsageBook
from tests.helpers import NOVEMBER, catalog, rate
from tests.unit.test_timeweighted import Archive
from tests.unit.test_timeweighted import stored as stored_state

PROPERTY = settings(max_examples=150, deadline=None)

PLANS = catalog(
    """
    meters:
      - {key: bytes, event_type: s, aggregation: sum, value: v, divide_by: "3", group_by: [g]}
      - {key: calls, event_type: c, aggregation: count, group_by: [g]}
      - {key: peak, event_type: x, aggregation: max, value: v}
      - {key: low, event_type: x, aggregation: min, value: v}
      - {key: last, event_type: x, aggregation: latest, value: v}
      - {key: users, event_type: u, aggregation: unique_count, value: v, group_by: [g]}
      - {key: disk, event_type: w, aggregation: time_weighted, value: v, group_by: [g]}
    plans:
      - key: p
        version: 1
        effective_from: "2026-01-01"
        currency: USD
        discount_percent: "7.5"
        minimum_commit: "40"
        charges:
          - meter: bytes
            model: graduated
            tiers: [{up_to: "10", unit_price: "0.333", flat_fee: "1"}, {up_to: null, unit_price: "0.1"}]
          - meter: calls
            model: volume
            tiers: [{up_to: "3", unit_price: "0.5", flat_fee: "2"}, {up_to: null, unit_price: "0.25"}]
          - {meter: peak, model: per_unit, unit_price: "0.015"}
          - {meter: low, model: per_unit, unit_price: "0.005"}
          - {meter: last, model: package, package_size: "2", package_price: "0.7"}
          - {meter: users, model: per_unit, unit_price: "1.005"}
          - {meter: disk, model: per_unit, unit_price: "0.0001"}
          - {key: support, model: flat, amount: "9.99"}
    customers:
      - {tenant: org-1, plan: p, credits: "12.345"}
      - tenant: org-2
        plan: p
        charges: [{meter: users, model: package, package_size: "3", package_price: "2"}]
    """
)

NOVEMBER_START = datetime(2026, 11, 1, tzinfo=UTC)
UNSET = object()

amounts = st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False)
signed = st.decimals(min_value=-(10**4), max_value=10**4, places=2, allow_nan=False, allow_infinity=False)


def as_json_value(number: Decimal, as_string: bool) -> Any:
    """A decimal string, or a JSON number whose text (an int, or a float's shortest repr) is exact."""
    if as_string:
        return str(number)
    return int(number) if number == number.to_integral_value() else float(number)


@st.composite
def usage_events(draw: st.DrawFn) -> list[str]:
    """Distinct valid events (unique ids), mostly in November, some either side of it."""
    count = draw(st.integers(min_value=0, max_value=25))
    lines = []
    for index in range(count):
        kind = draw(st.sampled_from("scxuw"))
        data: dict[str, Any] = {}
        group = draw(st.sampled_from(["a", "b", None, UNSET]))
        if group is not UNSET:
            data["g"] = group
        as_string = draw(st.booleans())
        if kind in "sw":
            data["v"] = as_json_value(draw(amounts), as_string)
        elif kind == "x":
            data["v"] = as_json_value(draw(signed), as_string)
        elif kind == "u":
            data["v"] = draw(st.one_of(st.integers(0, 6), st.sampled_from(["1", "5", "u-1", "u-2"])))
        offset = draw(st.integers(min_value=-2 * 86_400, max_value=32 * 86_400))
        moment = NOVEMBER_START + timedelta(seconds=offset)
        document = {
            "specversion": "1.0",
            "id": f"e{index}",
            "source": draw(st.sampled_from(["s1", "s2"])),
            "type": kind,
            "subject": draw(st.sampled_from(["org-1", "org-2", "org-3"])),
            "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": data,
        }
        lines.append(json.dumps(document))
    return lines


# --- order, repeats and determinism ---------------------------------------------------------------


@PROPERTY
@given(lines=usage_events(), data=st.data())
def test_invoices_do_not_change_when_events_are_reordered_or_repeated(
    lines: list[str], data: st.DataObject
) -> None:
    # GIVEN the same events, shuffled, with some of them sent again
    repeats = data.draw(st.lists(st.sampled_from(lines), max_size=8)) if lines else []
    shuffled = data.draw(st.permutations([*lines, *repeats]))

    # WHEN both files are rated
    once, again = rate(PLANS, lines), rate(PLANS, shuffled)

    # THEN the invoices are identical and every repeat is counted as a duplicate
    assert again["invoices"] == once["invoices"]
    assert again["unbilled_tenants"] == once["unbilled_tenants"]
    assert again["summary"]["duplicates"] == len(repeats)
    assert again["summary"]["accepted"] == once["summary"]["accepted"]
    assert again["summary"]["out_of_period"] == once["summary"]["out_of_period"]
    summary = again["summary"]
    assert summary["received"] == (
        summary["accepted"] + summary["duplicates"] + summary["rejected"] + summary["out_of_period"]
    )


@PROPERTY
@given(lines=usage_events())
def test_rating_the_same_input_twice_gives_the_same_bytes(lines: list[str]) -> None:
    first = orjson.dumps(rate_lines(PLANS, lines, NOVEMBER).to_json())
    second = orjson.dumps(rate_lines(PLANS, lines, NOVEMBER).to_json())
    assert first == second


# --- mergeable usage --------------------------------------------------------------------------------


def fold(lines: list[str]) -> list[tuple[str, Period, list[Any], datetime, str]]:
    metering = Metering(PLANS.meters_by_type)
    records = []
    for line in lines:
        event = parse_event(line)
        records.append((event.subject, event.period, metering.measure(event), event.time, event.id))
    return records


def book_of(records: list[tuple[str, Period, list[Any], datetime, str]]) -> UsageBook:
    book = UsageBook()
    for record in records:
        book.record(*record)
    return book


def chunked(
    records: list[tuple[str, Period, list[Any], datetime, str]], data: st.DataObject, store: bool = False
) -> list[UsageBook]:
    """The records split arbitrarily into four books (``store``: some stored as rollups keep them)."""
    chunk_of = data.draw(st.lists(st.integers(0, 3), min_size=len(records), max_size=len(records)))
    chunks = [book_of([r for r, c in zip(records, chunk_of, strict=True) if c == n]) for n in range(4)]
    return [stored(chunk) if store and data.draw(st.booleans()) else chunk for chunk in chunks]


def all_quantities(book: UsageBook) -> dict[Any, Any]:
    return {tenant_period: book.quantities(PLANS, *tenant_period) for tenant_period in book.tenant_periods()}


@PROPERTY
@given(lines=usage_events(), data=st.data())
def test_merged_chunk_states_equal_the_state_of_the_whole(lines: list[str], data: st.DataObject) -> None:
    # GIVEN the measurements split arbitrarily into chunks, each folded into its own book
    records = fold(lines)
    chunks = chunked(records, data)

    # WHEN the chunks are merged, in any order
    merged = UsageBook()
    for chunk in data.draw(st.permutations(chunks)):
        merged.merge(chunk)

    # THEN every tenant's and period's quantities are those of one book of everything
    assert all_quantities(merged) == all_quantities(book_of(records))


IDEMPOTENT = {
    Aggregation.MAX,
    Aggregation.MIN,
    Aggregation.LATEST,
    Aggregation.UNIQUE_COUNT,
    Aggregation.TIME_WEIGHTED,
}


def stored(book: UsageBook) -> UsageBook:
    """The book as the ledger keeps it: each time-weighted state summarised over its own archive."""
    for segments in book.states.values():
        for states in segments.values():
            for key, state in states.items():
                if isinstance(state, TimeWeightedState):
                    states[key] = stored_state(state, Archive())
    return book


@PROPERTY
@given(lines=usage_events(), data=st.data())
def test_stored_chunks_repeated_and_merged_in_any_order_equal_the_whole(
    lines: list[str], data: st.DataObject
) -> None:
    # GIVEN the measurements split into chunks, those of idempotent aggregations (all but sum and
    # count) some in two chunks, and some chunks stored (time-weighted states summarised over an
    # archive, as rollups keep them)
    records = fold(lines)
    chunk_of = data.draw(st.lists(st.integers(0, 3), min_size=len(records), max_size=len(records)))
    again = data.draw(st.lists(st.integers(0, 3), min_size=len(records), max_size=len(records)))
    homes = [
        {home, extra} if all(m.meter.aggregation in IDEMPOTENT for m in record[2]) else {home}
        for record, home, extra in zip(records, chunk_of, again, strict=True)
    ]
    chunks = []
    for n in range(4):
        chunk = book_of([r for r, home in zip(records, homes, strict=True) if n in home])
        chunks.append(stored(chunk) if data.draw(st.booleans()) else chunk)

    # WHEN the chunks are merged, in any order
    merged = UsageBook()
    for chunk in data.draw(st.permutations(chunks)):
        merged.merge(chunk)

    # THEN every tenant's and period's quantities are those of one book of everything
    assert all_quantities(merged) == all_quantities(book_of(records))


@PROPERTY
@given(lines=usage_events(), data=st.data())
def test_merging_stored_json_into_states_writes_what_merging_the_states_read_from_it_writes(
    lines: list[str], data: st.DataObject
) -> None:
    # GIVEN the measurements split into chunks, some stored as rollups keep them, each as its JSON
    records = fold(lines)
    chunks = [json.loads(json.dumps(chunk.to_json())) for chunk in chunked(records, data, store=True)]

    # WHEN one book merges the JSON straight into its states (each state's merge_json) and another
    # merges in the states read from it, in the same order
    straight, read = UsageBook(), UsageBook()
    for chunk in data.draw(st.permutations(chunks)):
        straight.merge_json(PLANS, chunk)
        read.merge(UsageBook.from_json(PLANS, chunk), adopt=True)

    # THEN both write the same bytes
    assert orjson.dumps(straight.to_json()) == orjson.dumps(read.to_json())


@PROPERTY
@given(lines=usage_events(), data=st.data())
def test_merging_leaves_the_merged_in_book_unchanged(lines: list[str], data: st.DataObject) -> None:
    records = fold(lines)
    split = data.draw(st.integers(0, len(records)))
    first, second, third = book_of(records[:split]), book_of(records[split:]), book_of(records)
    before = all_quantities(second)

    # WHEN second is merged into first, and then more usage into first
    first.merge(second)
    first.merge(third)

    # THEN second still holds only its own usage
    assert all_quantities(second) == before


@PROPERTY
@given(lines=usage_events())
def test_a_usage_book_survives_a_round_trip_through_json_text(lines: list[str]) -> None:
    book = book_of(fold(lines))
    text = json.dumps(book.to_json())
    assert all_quantities(UsageBook.from_json(PLANS, json.loads(text))) == all_quantities(book)


def test_a_usage_book_with_a_decimal_group_value_survives_a_round_trip_through_json_text() -> None:
    # GIVEN a group value that is a JSON number with a fraction (read as Decimal)
    line = '{"specversion":"1.0","id":"a","source":"s","type":"c","subject":"org-1",'
    line += '"time":"2026-11-02T00:00:00Z","data":{"g":1.5}}'
    book = book_of(fold([line]))

    # WHEN it is written as JSON text and read back
    restored = UsageBook.from_json(PLANS, json.loads(json.dumps(book.to_json())))

    # THEN the usage is the same, under the same group
    assert all_quantities(restored) == all_quantities(book)


# --- pricing ------------------------------------------------------------------------------------------

prices = st.decimals(min_value=0, max_value=100, places=3, allow_nan=False, allow_infinity=False)
quantities = st.fractions(min_value=0, max_value=10**5, max_denominator=1000)


@st.composite
def tier_lists(draw: st.DrawFn, *, non_decreasing: bool = False) -> tuple[Tier, ...]:
    bounds = sorted(set(draw(st.lists(st.integers(1, 10**4), max_size=4))))
    unit_prices = draw(st.lists(prices, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    fees = draw(st.lists(prices, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    if non_decreasing:
        unit_prices, fees = sorted(unit_prices), sorted(fees)
    ups: list[Decimal | None] = [Decimal(bound) for bound in bounds]
    ups.append(None)
    return tuple(Tier(up, unit, fee) for up, unit, fee in zip(ups, unit_prices, fees, strict=True))


@PROPERTY
@given(tiers=tier_lists(), a=quantities, b=quantities)
def test_graduated_price_never_falls_as_quantity_grows(
    tiers: tuple[Tier, ...], a: Fraction, b: Fraction
) -> None:
    low, high = sorted((a, b))
    assert graduated(tiers, low) <= graduated(tiers, high)


@PROPERTY
@given(tiers=tier_lists(), quantity=quantities)
def test_graduated_price_is_the_sum_of_its_tier_parts(tiers: tuple[Tier, ...], quantity: Fraction) -> None:
    # Each tier's part: the units between its lower and upper bound, at its price, plus its fee if any.
    total = Fraction(0)
    lower = Fraction(0)
    for tier in tiers:
        upper = Fraction(tier.up_to) if tier.up_to is not None else max(quantity, lower)
        units = min(max(quantity - lower, Fraction(0)), upper - lower)
        total += units * Fraction(tier.unit_price) + (Fraction(tier.flat_fee) if units > 0 else 0)
        lower = upper
    assert graduated(tiers, quantity) == total


@PROPERTY
@given(tiers=tier_lists(non_decreasing=True), a=quantities, b=quantities)
def test_volume_price_never_falls_when_tier_prices_and_fees_do_not_fall(
    tiers: tuple[Tier, ...], a: Fraction, b: Fraction
) -> None:
    low, high = sorted((a, b))
    assert volume(tiers, low) <= volume(tiers, high)


def tier_index(tiers: tuple[Tier, ...], quantity: Fraction) -> int:
    return next(i for i, tier in enumerate(tiers) if tier.up_to is None or quantity <= tier.up_to)


@PROPERTY
@given(tiers=tier_lists(), a=quantities, b=quantities)
def test_volume_price_never_falls_within_one_tier(tiers: tuple[Tier, ...], a: Fraction, b: Fraction) -> None:
    # Across tiers it may fall (a cheaper higher tier); within one it is q × unit_price + fee.
    low, high = sorted((a, b))
    assume(tier_index(tiers, low) == tier_index(tiers, high))  # not `if`: Hypothesis says if none qualify
    assert volume(tiers, low) <= volume(tiers, high)


def test_volume_price_can_fall_across_a_tier_boundary() -> None:
    # GIVEN 1 per unit up to 10, then 0.5: 10 units cost 10, 11 units cost 5.5
    tiers = (Tier(Decimal(10), Decimal(1)), Tier(None, Decimal("0.5")))
    assert volume(tiers, Fraction(10)) == 10
    assert volume(tiers, Fraction(11)) == Fraction(11, 2)


# --- invoices add up --------------------------------------------------------------------------------


@st.composite
def charges(draw: st.DrawFn, meter: str) -> Charge:
    model = draw(st.sampled_from([PricingModel.PER_UNIT, PricingModel.PACKAGE, PricingModel.GRADUATED]))
    if model is PricingModel.PER_UNIT:
        return Charge(model, meter=meter, unit_price=draw(prices))
    if model is PricingModel.PACKAGE:
        size = draw(st.decimals(min_value="0.5", max_value=1000, places=1))
        return Charge(model, meter=meter, package_size=size, package_price=draw(prices))
    return Charge(draw(st.sampled_from([model, PricingModel.VOLUME])), meter=meter, tiers=draw(tier_lists()))


@st.composite
def tenants(draw: st.DrawFn) -> tuple[Catalog, Customer, Plan, dict[Any, Fraction]]:
    meter_keys = ["m0", "m1", "m2"]
    meters = {key: Meter(key, f"t.{key}", Aggregation.SUM, ("v",), group_by=("g",)) for key in meter_keys}
    plan_charges = [draw(charges(key)) for key in meter_keys[:2]]
    if draw(st.booleans()):
        plan_charges.append(Charge(PricingModel.FLAT, key="support", amount=draw(prices)))
    optional_money = st.none() | st.decimals(min_value=0, max_value=500, places=4)
    plan = Plan(
        "p",
        1,
        NOVEMBER.start.date(),
        draw(st.sampled_from(["USD", "JPY", "KWD", "BHD", "EUR"])),
        tuple(plan_charges),
        draw(st.none() | st.decimals(min_value=0, max_value=100, places=2)),
        draw(optional_money),
    )
    overrides = tuple(draw(charges(key)) for key in draw(st.lists(st.sampled_from(meter_keys), unique=True)))
    customer = Customer("org-1", (Subscription("p", plan.effective_from),), overrides, draw(optional_money))
    plans = Catalog(meters=meters, plans={"p": (plan,)}, customers={"org-1": customer})
    usage_keys = st.tuples(st.sampled_from(meter_keys), st.tuples(st.sampled_from(["a", "b", None])))
    usage = draw(st.dictionaries(usage_keys, quantities, max_size=6))
    return plans, customer, plan, usage


@PROPERTY
@given(tenant=tenants())
def test_invoice_parts_always_add_up_to_the_total(
    tenant: tuple[Catalog, Customer, Plan, dict[Any, Fraction]],
) -> None:
    plans, customer, plan, usage = tenant

    # WHEN the tenant is rated, drawing on its credits
    (term,) = terms(plans, customer, NOVEMBER)
    credits = Credits.of(customer, plan.currency)
    if credits is not None:
        credits.open(NOVEMBER)
    invoice = rate_term(plans, customer, term, usage, plans.charges_for(customer, plan), credits)

    # THEN lines add up to the subtotal, and subtotal − discount + true-up − credits is the total
    currency = plan.currency
    zero = round_money(0, currency)
    assert sum((line.amount for line in invoice.lines), zero) == invoice.subtotal
    net = invoice.subtotal - invoice.discount
    assert net + invoice.commitment_true_up - invoice.credits_applied == invoice.total
    # AND (prices being non-negative) nothing is negative, credits and the minimum are met as rounded
    assert invoice.commitment_true_up >= zero
    assert zero <= invoice.credits_applied <= round_money(customer.credits or 0, currency)
    assert invoice.total >= zero
    if plan.minimum_commit is not None:
        assert invoice.total + invoice.credits_applied >= round_money(plan.minimum_commit, currency)
    # AND every figure is written at the currency's minor unit
    places = minor_units(plan.currency)
    written = invoice.to_json()
    figures = [line["amount"] for line in written["lines"]]
    figures += [written[name] for name in FIGURES]
    assert all(Decimal(figure).as_tuple().exponent == -places for figure in figures)
    # AND each line is its exact price rounded once
    for line in invoice.lines:
        charge = next(c for c in plans.charges_for(customer, plan) if c.line_key == line.meter)
        assert abs(line.amount.as_fraction() - price(charge, line.quantity)) <= Fraction(1, 2 * 10**places)
