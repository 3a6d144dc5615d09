"""Properties of SPEC v2 rating over random catalogs (subscriptions with gaps, credit grants, v1
credits) and random usage, rated over a range of periods (Hypothesis)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.catalog import (
    Aggregation,
    Billing,
    Catalog,
    Charge,
    CreditGrant,
    Customer,
    Meter,
    Plan,
    PricingModel,
    Subscription,
    Tier,
)
from meterline.offline import rate_cells, rate_lines
from meterline.periods import Period
from tests.helpers import event

PROPERTY = settings(max_examples=120, deadline=None)
FIRST, LAST = Period(2026, 9), Period(2026, 12)
START = datetime(2026, 8, 15, tzinfo=UTC)
HOURS = (datetime(2027, 1, 5, tzinfo=UTC) - START) // timedelta(hours=1)
ADDITIVE = {"bytes": Aggregation.SUM, "calls": Aggregation.COUNT, "disk": Aggregation.TIME_WEIGHTED}
METERS = {
    "bytes": Meter("bytes", "b", Aggregation.SUM, ("v",), group_by=("g",)),
    "calls": Meter("calls", "c", Aggregation.COUNT, None),
    "disk": Meter("disk", "d", Aggregation.TIME_WEIGHTED, ("v",), group_by=("g",)),
    "peak": Meter("peak", "d", Aggregation.MAX, ("v",)),
}
TYPES = {"b": "bytes", "c": "calls", "d": "disk"}
TIME = "%Y-%m-%dT%H:%M:%SZ"

prices = st.decimals(min_value=0, max_value=5, places=3)
money = st.decimals(min_value=0, max_value=300, places=2)
days = st.integers(min_value=0, max_value=150).map(lambda n: date(2026, 8, 20) + timedelta(days=n))


@st.composite
def charge(draw: st.DrawFn, meter: str) -> Charge:
    model = draw(st.sampled_from([PricingModel.PER_UNIT, PricingModel.GRADUATED, PricingModel.VOLUME]))
    if model is PricingModel.PER_UNIT:
        return Charge(model, meter=meter, unit_price=draw(prices))
    bound = draw(st.integers(1, 500))
    tiers = (Tier(Decimal(bound), draw(prices), draw(prices)), Tier(None, draw(prices)))
    return Charge(model, meter=meter, tiers=tiers)


@st.composite
def plan(draw: st.DrawFn, key: str) -> Plan:
    charges = [draw(charge(meter)) for meter in METERS]
    if draw(st.booleans()):
        charges.append(Charge(PricingModel.FLAT, key="support", amount=draw(money)))
    discount = draw(st.none() | st.decimals(min_value=0, max_value=100, places=1))
    commit = draw(st.none() | money)
    return Plan(key, 1, date(2026, 1, 1), "USD", tuple(charges), discount, commit)


@st.composite
def subscriptions(draw: st.DrawFn) -> tuple[Subscription, ...]:
    """Non-overlapping, from August to January, with gaps and sometimes open-ended."""
    cuts = sorted(set(draw(st.lists(days, min_size=2, max_size=6))))
    found = []
    for start, end in pairwise(cuts):
        if draw(st.integers(0, 3)) > 0:  # a gap now and then
            found.append(Subscription(draw(st.sampled_from(["a", "b"])), start, end))
    if draw(st.booleans()):
        found.append(Subscription(draw(st.sampled_from(["a", "b"])), cuts[-1], None))
    return tuple(found) or (Subscription("a", cuts[0], None),)


@st.composite
def grants(draw: st.DrawFn) -> tuple[CreditGrant, ...]:
    found = []
    for index in range(draw(st.integers(0, 3))):
        start = draw(days)
        expires = draw(st.none() | st.integers(1, 90).map(lambda n, start=start: start + timedelta(days=n)))
        found.append(CreditGrant(f"g{index}", draw(money), start, expires, draw(st.integers(0, 2))))
    return tuple(found)


@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    customers = {
        "org-1": Customer("org-1", draw(subscriptions()), credit_grants=draw(grants())),
        "org-2": Customer(
            "org-2",
            (Subscription("b", date(2026, 1, 1)),),
            credits=draw(st.none() | money),
            credit_grants=draw(grants()),
        ),
    }
    plans = {"a": (draw(plan("a")),), "b": (draw(plan("b")),)}
    return Catalog(METERS, plans, customers, Billing(first_period=FIRST))


@st.composite
def usage(draw: st.DrawFn) -> list[str]:
    lines = []
    for index in range(draw(st.integers(0, 30))):
        kind = draw(st.sampled_from("bcdd"))
        data: dict[str, Any] = {"g": draw(st.sampled_from(["x", "y"]))}
        if kind in "bd":
            data["v"] = str(draw(st.decimals(min_value=0, max_value=50, places=2)))
        time = START + timedelta(hours=draw(st.integers(0, HOURS)))
        subject = draw(st.sampled_from(["org-1", "org-2", "org-3"]))
        lines.append(event(f"e{index}", data, type=kind, subject=subject, time=time.strftime(TIME)))
    return lines


def periods() -> list[Period]:
    found, period = [], FIRST
    while period <= LAST:
        found.append(period)
        period = period.next()
    return found


def rated(catalog: Catalog, lines: list[str]) -> list[dict[str, Any]]:
    documents = [result.to_json() for result in rate_cells(catalog, {"local": lines}, FIRST, LAST)]
    parsed: list[dict[str, Any]] = json.loads(json.dumps(documents))
    return parsed


@PROPERTY
@given(catalog=catalogs(), lines=usage())
def test_every_invoice_adds_up_and_is_never_negative(catalog: Catalog, lines: list[str]) -> None:
    for document in rated(catalog, lines):
        for invoice in document["invoices"]:
            subtotal, discount, true_up, credits, total = (
                Decimal(invoice[key])
                for key in ("subtotal", "discount", "commitment_true_up", "credits_applied", "total")
            )
            assert sum((Decimal(line["amount"]) for line in invoice["lines"]), Decimal(0)) == subtotal
            assert subtotal - discount + true_up - credits == total
            assert credits == sum((Decimal(d["amount"]) for d in invoice["credit_drawdowns"]), Decimal(0))
            assert min(subtotal, discount, true_up, credits, total) >= 0
            assert all(Decimal(d["amount"]) > 0 for d in invoice["credit_drawdowns"])


@PROPERTY
@given(catalog=catalogs(), lines=usage())
def test_grants_are_conserved_and_only_eligible_grants_pay(catalog: Catalog, lines: list[str]) -> None:
    documents = rated(catalog, lines)
    drawn: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    final: dict[tuple[str, str], dict[str, str]] = {}
    for document in documents:
        period = Period.parse(document["period"])
        for invoice in document["invoices"]:
            eligible = eligible_grants(catalog, invoice["tenant"], period)
            for drawdown in invoice["credit_drawdowns"]:
                assert drawdown["grant"] in eligible
                drawn[(invoice["tenant"], drawdown["grant"])] += Decimal(drawdown["amount"])
        for balance in document["credit_balances"]:
            amount, spent, expired, remaining = (
                Decimal(balance[key]) for key in ("amount", "drawn", "expired", "remaining")
            )
            assert amount == spent + expired + remaining and remaining >= 0
            final[(balance["tenant"], balance["grant"])] = balance
    # every drawdown is in its grant's balance, and a balance drew nothing beyond its drawdowns
    assert {
        key: Decimal(balance["drawn"]) for key, balance in final.items() if Decimal(balance["drawn"])
    } == {key: amount for key, amount in drawn.items() if amount}


def eligible_grants(catalog: Catalog, tenant: str, period: Period) -> set[str]:
    customer = catalog.customers[tenant]
    found = {
        grant.id
        for grant in customer.credit_grants
        if grant.effective_from < period.end.date()
        and (grant.expires is None or grant.expires > period.start.date())
    }
    return found | ({f"credits:{period}"} if customer.credits is not None else set())


@PROPERTY
@given(catalog=catalogs(), lines=usage())
def test_billed_and_unbilled_usage_add_up_to_the_accepted_usage(catalog: Catalog, lines: list[str]) -> None:
    # GIVEN the accepted quantity of each additive meter, worked out here from the events themselves
    expected = accepted_quantities(lines)

    # WHEN the range is rated
    documents = rated(catalog, lines)

    # THEN what the invoices bill plus what is reported unbilled is exactly that, tenant by tenant
    found: dict[tuple[str, str, str, str], Fraction] = defaultdict(Fraction)
    for document in documents:
        for invoice in document["invoices"]:
            for line in invoice["lines"]:
                if line["meter"] in ADDITIVE:
                    key = (document["period"], invoice["tenant"], line["meter"], json.dumps(line["group"]))
                    found[key] += Fraction(line["quantity"])
        for unbilled in document["unbilled_usage"]:
            if unbilled["meter"] in ADDITIVE:
                key = (
                    document["period"],
                    unbilled["tenant"],
                    unbilled["meter"],
                    json.dumps(unbilled["group"]),
                )
                found[key] += Fraction(unbilled["quantity"])
    assert {k: v for k, v in found.items() if v} == {k: v for k, v in expected.items() if v}


def accepted_quantities(lines: list[str]) -> dict[tuple[str, str, str, str], Fraction]:
    """Per (period, tenant, meter, group): sums, counts, and value × hours of time-weighted samples
    (each holding until the next of its tenant and group, the last for ever), from billing's start."""
    quantities: dict[tuple[str, str, str, str], Fraction] = defaultdict(Fraction)
    samples: dict[tuple[str, str], list[tuple[datetime, str, Fraction]]] = defaultdict(list)
    for line in lines:
        usage_event = json.loads(line)
        time = datetime.strptime(usage_event["time"], TIME).replace(tzinfo=UTC)
        period = Period.of(time)
        if period < FIRST:
            continue
        meter = TYPES[usage_event["type"]]
        group = json.dumps({"g": usage_event["data"]["g"]}) if meter != "calls" else "{}"
        if meter == "disk":
            value = Fraction(usage_event["data"]["v"])
            samples[(usage_event["subject"], group)].append((time, usage_event["id"], value))
        elif period <= LAST:
            amount = Fraction(usage_event["data"]["v"]) if meter == "bytes" else Fraction(1)
            quantities[(str(period), usage_event["subject"], meter, group)] += amount
    for (tenant, group), found in samples.items():
        found.sort()
        ends = [time for time, _, _ in found[1:]] + [LAST.end]
        for (since, _, value), until in zip(found, ends, strict=True):
            for period in periods():
                overlap = min(until, period.end) - max(since, period.start)
                if overlap > timedelta(0):
                    hours = Fraction(overlap // timedelta(seconds=1), 3600)
                    quantities[(str(period), tenant, "disk", group)] += value * hours
    return quantities


@PROPERTY
@given(catalog=catalogs(), lines=usage(), data=st.data())
def test_a_period_rated_alone_is_the_period_of_the_range(
    catalog: Catalog, lines: list[str], data: st.DataObject
) -> None:
    # GIVEN one period of the range, rated on its own (balances and carried values worked out inside)
    period = data.draw(st.sampled_from(periods()))
    alone = json.loads(json.dumps(rate_lines(catalog, lines, period).to_json()))
    # THEN it is the range's document for that period
    (in_range,) = [document for document in rated(catalog, lines) if document["period"] == str(period)]
    assert alone == in_range
