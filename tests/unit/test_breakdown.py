"""The demo's per-region breakdown of an invoice: exact attribution from each cell's statements."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from meterline.aggregation import new_state
from meterline.bench import bench_catalog
from meterline.local.breakdown import (
    EVERY_CELL,
    attributable,
    cell_quantities,
    line_key,
    market_breakdown,
    split_amount,
)
from meterline.periods import Period
from meterline.usage import UsageBook


def invoice(tenant: str, *lines: dict[str, object]) -> dict[str, object]:
    return {"tenant": tenant, "lines": list(lines)}


def line(meter: str, group: dict[str, object], quantity: str, amount: str) -> dict[str, object]:
    return {"meter": meter, "group": group, "quantity": quantity, "amount": amount}


def test_an_amount_is_split_by_largest_remainder_in_its_last_place() -> None:
    # GIVEN 10.00 over three equal quantities / WHEN split
    parts = split_amount(Decimal("10.00"), {"a": Fraction(1), "b": Fraction(1), "c": Fraction(1)})
    # THEN each gets 3.33 and the cent left over goes to the cell named first
    assert parts == {"a": Decimal("3.34"), "b": Decimal("3.33"), "c": Decimal("3.33")}
    # AND a larger remainder wins over the order: 1.00 as 1:2 is 0.333.. and 0.666..
    assert split_amount(Decimal("1.00"), {"a": Fraction(1), "b": Fraction(2)}) == {
        "a": Decimal("0.33"),
        "b": Decimal("0.67"),
    }


@given(
    cents=st.integers(min_value=-(10**9), max_value=10**9),
    weights=st.lists(st.fractions(min_value=Fraction(1, 1000), max_value=10**6), min_size=1, max_size=6),
)
def test_the_parts_of_a_split_always_add_up_to_the_amount(cents: int, weights: list[Fraction]) -> None:
    amount = Decimal(cents).scaleb(-2)
    parts = split_amount(amount, {f"cell{i}": weight for i, weight in enumerate(weights)})
    assert sum(parts.values(), Decimal(0)) == amount
    assert all(part.as_tuple().exponent == -2 for part in parts.values())


def test_a_line_not_grouped_by_region_is_split_by_each_cells_quantity() -> None:
    # GIVEN a capacity line of 30 units, 10 from one cell and 20 from another, and an egress line
    # priced in Mumbai
    capacity = line("capacity_unit_hours", {"cluster": "c1"}, "30", "22.50")
    egress = line("egress_gb", {"$cloud": "aws", "$region": "ap-south-1"}, "5", "0.45")
    quantities = {
        line_key("t1", "capacity_unit_hours", {"cluster": "c1"}): {
            "aws-ap-south-1": Fraction(10),
            "gcp-europe-west1": Fraction(20),
        }
    }
    # WHEN broken down by market
    amounts = market_breakdown(invoice("t1", capacity, egress), quantities)
    # THEN the capacity amount is split 1:2 and egress is Mumbai's, nothing under "every cell"
    assert amounts == {"aws-ap-south-1": Decimal("7.95"), "gcp-europe-west1": Decimal("15.00")}


def test_a_line_whose_cells_do_not_add_up_to_it_stays_under_every_cell() -> None:
    # GIVEN a line of 30 units whose cells' quantities add up to 29 (a max, or a cut month)
    capacity = line("capacity_unit_hours", {"cluster": "c1"}, "30", "22.50")
    quantities = {
        line_key("t1", "capacity_unit_hours", {"cluster": "c1"}): {"a": Fraction(9), "b": Fraction(20)}
    }
    # WHEN broken down / THEN it is not attributed at all
    assert market_breakdown(invoice("t1", capacity), quantities) == {EVERY_CELL: Decimal("22.50")}
    # AND with no quantities every line not grouped by region is under "every cell"
    assert market_breakdown(invoice("t1", capacity)) == {EVERY_CELL: Decimal("22.50")}


def test_a_tenant_with_two_invoices_in_the_month_is_not_attributed() -> None:
    # GIVEN cell quantities for two tenants, one of them with two invoices (a plan change mid-month)
    quantities = {
        line_key("t1", "m", {}): {"a": Fraction(1)},
        line_key("t2", "m", {}): {"a": Fraction(1)},
    }
    # WHEN kept for attribution / THEN only the tenant with one invoice keeps its quantities
    kept = attributable([invoice("t1"), invoice("t2"), invoice("t2")], quantities)
    assert list(kept) == [line_key("t1", "m", {})]


def test_a_cells_quantities_are_keyed_by_the_group_as_the_invoice_line_spells_it() -> None:
    # GIVEN a cell's book with ingress (grouped by cluster) under a decimal and a 65-bit cluster
    catalog, period = bench_catalog(), Period(2026, 11)
    book = UsageBook()
    meter = catalog.meters["ingress_gb"]
    states = book.states_of("org-0001", period)
    for cluster in (Decimal("1.5"), 2**64):
        state = states[(meter.key, (cluster,))] = new_state(meter.aggregation)
        state.add(Decimal(10**9), datetime(2026, 11, 3, tzinfo=UTC), "e1")
    # WHEN its quantities are keyed for attribution
    quantities = cell_quantities(catalog, {"aws-ap-south-1": book}, period)
    # THEN the keys are the invoice lines' (a decimal and a big integer as text), not another spelling
    assert set(quantities) == {
        line_key("org-0001", "ingress_gb", {"cluster": "1.5"}),
        line_key("org-0001", "ingress_gb", {"cluster": str(2**64)}),
    }
