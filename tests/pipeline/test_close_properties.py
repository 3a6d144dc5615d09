"""Properties of the close over random catalogs, random arrival orders and random close times, late
deliveries included, on the in-memory cell (Hypothesis): SPEC §7's invariant field by field against
`meterline rate` on the events the pipeline accepted, invoice totals never negative, numbers
without a gap, grants never drawn beyond their amount."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from meterline.adapters.memory import MemoryPublisher
from meterline.catalog import Catalog, Charge, parse_catalog
from meterline.pipeline.cell import Cell
from meterline.pipeline.invoices import all_amendments, invoices_by_period
from meterline.pipeline.meter import DeliveredRecord
from meterline.records import Delivery
from meterline.topology import OUTCOMES_TABLE, USAGE_EVENTS
from tests.unit.test_billing_properties import catalogs, usage

from .test_cell import stream_vs_batch

PROPERTY = settings(max_examples=200, deadline=None)
SEPTEMBER = datetime(2026, 9, 1, tzinfo=UTC)
LAST_CLOSE = datetime(2027, 2, 1, 2, tzinfo=UTC)
"""Closes up to January: late usage is amended by the close of the period it arrived in, and the
last of it may arrive in January."""


def catalog_text(catalog: Catalog, amend_periods: int, per: str) -> str:
    """The catalog as YAML (JSON is YAML), so the pipeline can store the snapshot it rates with."""
    document = {
        "meters": [
            {
                "key": meter.key,
                "event_type": meter.event_type,
                "aggregation": meter.aggregation.value,
                **({"value": ".".join(meter.value)} if meter.value else {}),
                **({"group_by": list(meter.group_by)} if meter.group_by else {}),
            }
            for meter in catalog.meters.values()
        ],
        "plans": [
            {
                "key": plan.key,
                "version": plan.version,
                "effective_from": str(plan.effective_from),
                "currency": plan.currency,
                "charges": [_charge(charge) for charge in plan.charges],
                **(
                    {"discount_percent": str(plan.discount_percent)}
                    if plan.discount_percent is not None
                    else {}
                ),
                **({"minimum_commit": str(plan.minimum_commit)} if plan.minimum_commit is not None else {}),
            }
            for versions in catalog.plans.values()
            for plan in versions
        ],
        "customers": [
            {
                "tenant": customer.tenant,
                "subscriptions": [
                    {"plan": s.plan, "from": str(s.start), "to": str(s.end) if s.end else None}
                    for s in customer.subscriptions
                ],
                **({"credits": str(customer.credits)} if customer.credits is not None else {}),
                "credit_grants": [
                    {
                        "id": grant.id,
                        "amount": str(grant.amount),
                        "effective_from": str(grant.effective_from),
                        "expires": str(grant.expires) if grant.expires else None,
                        "priority": grant.priority,
                    }
                    for grant in customer.credit_grants
                ],
            }
            for customer in catalog.customers.values()
        ],
        "billing": {
            "first_period": str(catalog.first_period),
            "amend_periods": amend_periods,
            "numbering": {"prefix": "", "per": per},
        },
    }
    return json.dumps(document, indent=1)


def _charge(charge: Charge) -> dict[str, Any]:
    if charge.key is not None:
        return {"key": charge.key, "model": charge.model.value, "amount": str(charge.amount)}
    found: dict[str, Any] = {"meter": charge.meter, "model": charge.model.value}
    if charge.unit_price is not None:
        found["unit_price"] = str(charge.unit_price)
    if charge.tiers:
        found["tiers"] = [
            {
                "up_to": None if t.up_to is None else str(t.up_to),
                "unit_price": str(t.unit_price),
                "flat_fee": str(t.flat_fee),
            }
            for t in charge.tiers
        ]
    return found


@st.composite
def schedules(draw: st.DrawFn, count: int) -> list[tuple[int, datetime]]:
    """Where the arrivals stop for a close, and as of when: increasing instants, September to January."""
    closes = sorted(draw(st.lists(st.integers(0, 125 * 24), max_size=4)))
    cuts = sorted(draw(st.lists(st.integers(0, count), min_size=len(closes), max_size=len(closes))))
    return [(cut, SEPTEMBER + timedelta(hours=hours)) for cut, hours in zip(cuts, closes, strict=True)]


@PROPERTY
@given(
    drawn=catalogs(),
    amend_periods=st.integers(0, 3),
    per=st.sampled_from(["issuer", "customer"]),
    lines=usage(),
    data=st.data(),
)
def test_invoices_and_amendments_equal_rate_whatever_the_arrival_order_and_close_times(
    drawn: Catalog, amend_periods: int, per: str, lines: list[str], data: st.DataObject
) -> None:
    # GIVEN a random catalog, its events in a random arrival order, and closes at random times
    catalog = parse_catalog(catalog_text(drawn, amend_periods, per), "<property catalog>")
    arrivals = [line.encode() for line in data.draw(st.permutations(lines))]
    cell = Cell(catalog, MemoryPublisher())
    cell.meter.window_ttl = 0  # the window as the last close left it: nothing races past it
    delivered = 0
    # WHEN the events arrive, interleaved with the closes, and a last close issues up to January
    for cut, now in [*data.draw(schedules(len(arrivals))), (len(arrivals), LAST_CLOSE)]:
        records = [
            DeliveredRecord(Delivery(USAGE_EVENTS.name, 0, offset), None, arrivals[offset])
            for offset in range(delivered, cut)
        ]
        assert not cell.deliver(records).failed
        delivered = max(delivered, cut)
        cell.close(now)
    # THEN invoices plus amendments equal `meterline rate` on the events the pipeline accepted
    rejected = {int(str(item["sk"])) for item in cell.store.scan(OUTCOMES_TABLE.name)}
    assert {item["reason"] for item in cell.store.scan(OUTCOMES_TABLE.name)} <= {"out_of_window"}
    accepted = [line for offset, line in enumerate(arrivals) if offset not in rejected]
    assert stream_vs_batch(catalog, cell.store, accepted, "2026-09", "2026-12") == []
    by_period = invoices_by_period(cell.store)
    invoices = [invoice for period in by_period.values() for invoice in period]
    amendments = all_amendments(cell.store)
    event(f"amendments: {'some' if amendments else 'none'}; out of window: {'some' if rejected else 'none'}")
    event(f"grant expired before amending: {any(a['expired_grants'] for a in amendments)}")
    # AND no invoice's total is negative, nor is it once amended
    totals: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for period, issued in by_period.items():
        for invoice in issued:
            assert Decimal(invoice["total"]) >= 0
            totals[(invoice["tenant"], period, invoice["subscription"])] += Decimal(invoice["total"])
    for amendment in amendments:
        key = (amendment["tenant"], amendment["adjusts_period"], amendment["subscription"])
        totals[key] += Decimal(amendment["total_delta"])
    assert all(total >= 0 for total in totals.values())
    # AND the numbers run 1..n in each sequence
    sequences: dict[str, list[int]] = defaultdict(list)
    for document in [*invoices, *amendments]:
        tenant, number = str(document["tenant"]), str(document["number"])
        sequences[tenant if per == "customer" else ""].append(int(number.rsplit("-", 1)[-1]))
    for numbers in sequences.values():
        assert sorted(numbers) == list(range(1, len(numbers) + 1))
    # AND no grant paid more than its amount, nor gave back more than it paid
    drawn_from: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for document in [*invoices, *amendments]:
        for drawdown in document["credit_drawdowns"]:
            drawn_from[(document["tenant"], drawdown["grant"])] += Decimal(drawdown["amount"])
    for (tenant, grant), amount in drawn_from.items():
        customer = catalog.customers[tenant]
        granted = {g.id: g.amount for g in customer.credit_grants}.get(grant, customer.credits)
        assert granted is not None and Decimal(0) <= amount <= granted
