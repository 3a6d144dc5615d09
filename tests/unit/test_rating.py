"""SPEC §3 rating: lines, rounding, plan versions, overrides, discount, commitment and credits.

Expected values are worked out by hand in the comment beside them.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterline.catalog import Catalog
from meterline.money import round_money
from meterline.periods import Period
from meterline.rating import sort_usage, usage_order
from tests.helpers import catalog, event, invoice_of, rate


def priced(
    unit_price: str,
    *,
    currency: str = "USD",
    aggregation: str = "sum",
    plan_extra: str = "",
    customer_extra: str = "",
) -> Catalog:
    return catalog(
        f"""
        meters: [{{key: m, event_type: t, aggregation: {aggregation}, value: v}}]
        plans:
          - {{key: p, version: 1, effective_from: "2026-01-01", currency: {currency},
             charges: [{{meter: m, model: per_unit, unit_price: "{unit_price}"}}]{plan_extra}}}
        customers: [{{tenant: org-42, plan: p{customer_extra}}}]
        """
    )


def usage(*values: Any) -> list[str]:
    return [event(f"e{i}", {"v": value}, type="t") for i, value in enumerate(values)]


def totals(invoice: dict[str, Any]) -> tuple[str, ...]:
    """subtotal, discount, commitment_true_up, credits_applied, total"""
    keys = ("subtotal", "discount", "commitment_true_up", "credits_applied", "total")
    return tuple(invoice[key] for key in keys)


# --- rounding ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Fraction(5, 1000), "USD", "0.01"),  # 0.005: half a cent rounds away from zero
        (Fraction(-5, 1000), "USD", "-0.01"),  # -0.005: away from zero, downwards
        (Fraction(15, 1000), "USD", "0.02"),  # 0.015 → 0.02 (not to even: 0.02 either way)
        (Fraction(25, 1000), "USD", "0.03"),  # 0.025 → 0.03 (half-even would give 0.02)
        (Fraction(4999, 1000000), "USD", "0.00"),  # 0.004999 is under half a cent
        (Fraction(-1, 1000), "USD", "0.00"),  # rounds to zero, written without a sign
        (Fraction(1, 3), "USD", "0.33"),
        (Fraction(5, 2), "JPY", "3"),  # 2.5 yen → 3: JPY has no minor unit
        (Fraction(-5, 2), "JPY", "-3"),
        (Fraction(7, 2), "JPY", "4"),
        (Fraction(1, 2000), "KWD", "0.001"),  # 0.0005 KWD → 0.001: three decimals
        (Fraction(10005, 10000), "KWD", "1.001"),
        (Fraction(100049, 100000), "KWD", "1.000"),  # 1.00049
        (Fraction(0), "KWD", "0.000"),
        (Fraction(10**30) + Fraction(1, 200), "USD", "1000000000000000000000000000000.01"),  # past 28 digits
    ],
)
def test_round_money_rounds_half_away_from_zero_to_the_minor_unit(
    amount: Fraction, currency: str, expected: str
) -> None:
    assert str(round_money(amount, currency)) == expected


@pytest.mark.parametrize(
    ("currency", "unit_price", "quantity", "expected"),
    [
        ("USD", "0.005", "3", "0.02"),  # 3 × 0.005 = 0.015 → 0.02
        ("USD", "0.005", "1", "0.01"),  # 0.005 → 0.01
        ("JPY", "0.5", "5", "3"),  # 5 × 0.5 = 2.5 → 3
        ("JPY", "0.5", "3", "2"),  # 1.5 → 2
        ("KWD", "0.0005", "1", "0.001"),  # 0.0005 → 0.001
        ("KWD", "0.0005", "3", "0.002"),  # 0.0015 → 0.002
    ],
)
def test_each_line_is_rounded_once_in_its_currency(
    currency: str, unit_price: str, quantity: str, expected: str
) -> None:
    invoice = invoice_of(rate(priced(unit_price, currency=currency), usage(quantity)))
    assert invoice["currency"] == currency
    assert invoice["lines"][0]["amount"] == expected
    assert invoice["total"] == expected


def test_lines_are_rounded_before_they_are_added() -> None:
    # GIVEN two groups of 0.005 each: each line rounds to 0.01, so the subtotal is 0.02 (not round(0.01))
    plans = catalog(
        """
        meters: [{key: m, event_type: t, aggregation: sum, value: v, group_by: [g]}]
        plans:
          - {key: p, version: 1, effective_from: "2026-01-01", currency: USD,
             charges: [{meter: m, model: per_unit, unit_price: "0.005"}]}
        customers: [{tenant: org-42, plan: p}]
        """
    )
    lines = [event("a", {"v": 1, "g": "x"}, type="t"), event("b", {"v": 1, "g": "y"}, type="t")]
    invoice = invoice_of(rate(plans, lines))
    assert [line["amount"] for line in invoice["lines"]] == ["0.01", "0.01"]
    assert invoice["subtotal"] == "0.02"


def test_quantities_and_money_keep_every_digit_past_28() -> None:
    # GIVEN 10^30 + 1 units plus 0.5 units at 1 USD: Decimal's default 28 digits would lose the tail
    invoice = invoice_of(rate(priced("1"), usage(10**30 + 1, "0.5")))
    line = invoice["lines"][0]
    assert line["quantity"] == "1000000000000000000000000000001.5"
    assert line["amount"] == "1000000000000000000000000000001.50"
    assert invoice["subtotal"] == invoice["total"] == "1000000000000000000000000000001.50"


def test_a_negative_quantity_is_priced_as_zero_and_keeps_its_quantity() -> None:
    # GIVEN a latest value of -1 (v1 billed -0.01; SPEC v2 prices q < 0 as 0)
    invoice = invoice_of(rate(priced("0.005", aggregation="latest"), usage("-1")))
    assert invoice["lines"][0] == {"meter": "m", "group": {}, "quantity": "-1", "amount": "0.00"}
    assert invoice["total"] == "0.00"


# --- lines ---------------------------------------------------------------------------------------


def test_zero_usage_still_gives_a_line_of_zero() -> None:
    # GIVEN a graduated charge whose first tier carries a fee, and usage that sums to 0
    plans = catalog(
        """
        meters: [{key: m, event_type: t, aggregation: sum, value: v}]
        plans:
          - key: p
            version: 1
            effective_from: "2026-01-01"
            currency: USD
            charges:
              - {meter: m, model: graduated, tiers: [{up_to: null, unit_price: "1", flat_fee: "100"}]}
        customers: [{tenant: org-42, plan: p}]
        """
    )
    invoice = invoice_of(rate(plans, usage(0, "0.0")))
    # THEN one line, quantity 0, amount 0.00: no fee without a unit
    assert invoice["lines"] == [{"meter": "m", "group": {}, "quantity": "0", "amount": "0.00"}]
    assert invoice["total"] == "0.00"


def test_no_usage_gives_no_usage_line_but_flat_charges_and_an_invoice() -> None:
    plans = catalog(
        """
        meters: [{key: m, event_type: t, aggregation: sum, value: v}]
        plans:
          - {key: p, version: 1, effective_from: "2026-01-01", currency: USD,
             charges: [{meter: m, model: per_unit, unit_price: "1"},
                       {key: support, model: flat, amount: "99"}]}
        customers: [{tenant: org-42, plan: p}]
        """
    )
    invoice = invoice_of(rate(plans, []))
    assert invoice["lines"] == [{"meter": "support", "group": {}, "quantity": "1", "amount": "99.00"}]
    assert totals(invoice) == ("99.00", "0.00", "0.00", "0.00", "99.00")


LINE_ORDER = """
meters:
  - {key: storage, event_type: s, aggregation: sum, value: v}
  - {key: api, event_type: a, aggregation: count, group_by: [region]}
  - {key: unpriced, event_type: a, aggregation: count}
plans:
  - key: p
    version: 1
    effective_from: "2026-01-01"
    currency: USD
    charges:
      - {key: support, model: flat, amount: "10"}
      - {meter: storage, model: per_unit, unit_price: "1"}
      - {key: platform, model: flat, amount: "20"}
      - {meter: api, model: per_unit, unit_price: "1"}
customers: [{tenant: org-42, plan: p}]
"""


def test_lines_are_usage_by_meter_then_group_then_flat_charges_in_catalog_order() -> None:
    # GIVEN usage of storage and api (regions eu and us) and a measured meter the plan does not price
    lines = [
        event("1", {"v": 2}, type="s"),
        event("2", {"region": "us"}, type="a"),
        event("3", {"region": "eu"}, type="a"),
    ]
    invoice = invoice_of(rate(catalog(LINE_ORDER), lines))
    # THEN api (eu, us), storage, then support and platform; nothing for "unpriced"
    assert [(line["meter"], line["group"]) for line in invoice["lines"]] == [
        ("api", {"region": "eu"}),
        ("api", {"region": "us"}),
        ("storage", {}),
        ("support", {}),
        ("platform", {}),
    ]
    assert invoice["subtotal"] == "34.00"  # api 1 + 1, storage 2, support 10, platform 20


# --- plan versions and overrides ------------------------------------------------------------------

VERSIONS = """
meters: [{key: m, event_type: t, aggregation: count}]
plans:
  - {key: p, version: 3, effective_from: "2026-11-02", currency: USD,
     charges: [{meter: m, model: per_unit, unit_price: "3"}]}
  - {key: p, version: 1, effective_from: "2026-01-01", currency: USD,
     charges: [{meter: m, model: per_unit, unit_price: "1"}]}
  - {key: p, version: 2, effective_from: "2026-11-01", currency: USD,
     charges: [{meter: m, model: per_unit, unit_price: "2"}]}
customers: [{tenant: org-42, plan: p}]
"""


@pytest.mark.parametrize(
    ("period", "version", "amount"),
    [
        (Period(2026, 10), 1, "1.00"),  # only v1 has started by 1 Oct
        (Period(2026, 11), 2, "2.00"),  # v2 starts on 1 Nov itself (not after); v3 starts after 1 Nov
        (Period(2026, 12), 3, "3.00"),  # v3 is the latest not after 1 Dec
    ],
)
def test_the_plan_version_is_the_latest_effective_from_not_after_period_start(
    period: Period, version: int, amount: str
) -> None:
    lines = [event("1", {}, type="t", time=f"{period}-15T00:00:00Z")]
    invoice = invoice_of(rate(catalog(VERSIONS), lines, period))
    assert (invoice["version"], invoice["lines"][0]["amount"]) == (version, amount)


def test_a_tenant_whose_plan_has_not_started_is_unbilled_if_it_has_usage() -> None:
    # GIVEN billing from January 2025, and December 2025, before any version: org-42 has usage
    billed_from_2025 = catalog(VERSIONS + 'billing: {first_period: "2025-01"}\n')
    lines = [event("1", {}, type="t", time="2025-12-05T00:00:00Z")]
    result = rate(billed_from_2025, lines, Period(2025, 12))
    assert result["invoices"] == []
    assert result["unbilled_tenants"] == ["org-42"]
    assert result["unbilled_usage"] == [
        {
            "tenant": "org-42",
            "period": "2025-12",
            "meter": "m",
            "group": {},
            "quantity": "1",
            "reason": "no_subscription",
        }
    ]


def test_usage_before_billing_starts_is_out_of_period_and_unbilled_nowhere() -> None:
    # GIVEN billing from the earliest version (January 2026, the default) and a December 2025 event
    lines = [event("1", {}, type="t", time="2025-12-05T00:00:00Z")]
    result = rate(catalog(VERSIONS), lines, Period(2025, 12))
    assert (result["invoices"], result["unbilled_usage"], result["unbilled_tenants"]) == ([], [], [])
    assert (result["summary"]["accepted"], result["summary"]["out_of_period"]) == (0, 1)


def test_a_tenant_whose_plan_has_not_started_and_has_no_usage_is_neither_billed_nor_listed() -> None:
    result = rate(catalog(VERSIONS), [], Period(2025, 12))
    assert (result["invoices"], result["unbilled_tenants"]) == ([], [])


OVERRIDES = """
meters:
  - {key: cpu, event_type: c, aggregation: sum, value: v}
  - {key: gpu, event_type: g, aggregation: sum, value: v}
plans:
  - key: p
    version: 1
    effective_from: "2026-01-01"
    currency: USD
    charges:
      - {meter: cpu, model: per_unit, unit_price: "1"}
      - {key: support, model: flat, amount: "99"}
customers:
  - tenant: org-42
    plan: p
    charges:
      - {meter: cpu, model: per_unit, unit_price: "0.5"}
      - {key: support, model: flat, amount: "49"}
      - {meter: gpu, model: package, package_size: "10", package_price: "7"}
  - {tenant: org-7, plan: p}
"""


def test_contract_overrides_replace_the_plan_charge_and_add_charges_it_lacks() -> None:
    lines = [
        event("1", {"v": 10}, type="c", subject="org-42"),
        event("2", {"v": 11}, type="g", subject="org-42"),
        event("3", {"v": 10}, type="c", subject="org-7"),
        event("4", {"v": 11}, type="g", subject="org-7"),
    ]
    result = rate(catalog(OVERRIDES), lines)
    amounts = {
        invoice["tenant"]: [(line["meter"], line["amount"]) for line in invoice["lines"]]
        for invoice in result["invoices"]
    }
    # THEN org-42: cpu 10 × 0.5 = 5, gpu ceil(11 / 10) = 2 × 7 = 14, support replaced by 49
    assert amounts["org-42"] == [("cpu", "5.00"), ("gpu", "14.00"), ("support", "49.00")]
    # AND org-7 keeps the plan: cpu 10 × 1 = 10, gpu unpriced, support 99
    assert amounts["org-7"] == [("cpu", "10.00"), ("support", "99.00")]


# --- discount, commitment and credits -------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan_extra", "customer_extra", "expected"),
    [
        # subtotal 123.45; 10 % = 12.345 → 12.35; total 123.45 − 12.35 = 111.10
        (', discount_percent: "10"', "", ("123.45", "12.35", "0.00", "0.00", "111.10")),
        # net 111.10 under a 500 minimum: true-up 500 − 111.10 = 388.90; credits 100 of 500; total 400
        (
            ', discount_percent: "10", minimum_commit: "500"',
            ', credits: "100"',
            ("123.45", "12.35", "388.90", "100.00", "400.00"),
        ),
        # a minimum below the net adds nothing: 123.45 ≥ 50
        (', minimum_commit: "50"', "", ("123.45", "0.00", "0.00", "0.00", "123.45")),
        # credits beyond what is owed cover it all: min(1000, 123.45) = 123.45; total 0
        ("", ', credits: "1000"', ("123.45", "0.00", "0.00", "123.45", "0.00")),
        # credits are rounded where used: 10.005 → 10.01; total 123.45 − 10.01 = 113.44
        ("", ', credits: "10.005"', ("123.45", "0.00", "0.00", "10.01", "113.44")),
        # the commitment is rounded too: 200.005 → 200.01; true-up 200.01 − 123.45 = 76.56
        (', minimum_commit: "200.005"', "", ("123.45", "0.00", "76.56", "0.00", "200.01")),
        # 100 % discount: net 0, all of a 20 minimum is trued up; total 20
        (
            ', discount_percent: "100", minimum_commit: "20"',
            "",
            ("123.45", "123.45", "20.00", "0.00", "20.00"),
        ),
    ],
)
def test_discount_commitment_true_up_and_credits_add_up_to_the_total(
    plan_extra: str, customer_extra: str, expected: tuple[str, ...]
) -> None:
    # GIVEN 123.45 of usage (12345 units at 0.01)
    plans = priced("0.01", plan_extra=plan_extra, customer_extra=customer_extra)
    invoice = invoice_of(rate(plans, usage(12345)))
    assert totals(invoice) == expected


def test_a_jpy_discount_rounds_to_whole_yen() -> None:
    # GIVEN ¥1005 of usage and 10 % off: 100.5 → ¥101 off; total ¥904
    plans = priced("1", currency="JPY", plan_extra=', discount_percent: "10"')
    invoice = invoice_of(rate(plans, usage(1005)))
    assert totals(invoice) == ("1005", "101", "0", "0", "904")


def test_a_kwd_commitment_and_credits_keep_three_decimals() -> None:
    # GIVEN 1.2345 KWD of usage → line 1.235 (half up); minimum 2.0004 → 2.000; credits 0.5
    plans = priced(
        "0.0001", currency="KWD", plan_extra=', minimum_commit: "2.0004"', customer_extra=', credits: "0.5"'
    )
    invoice = invoice_of(rate(plans, usage(12345)))
    # THEN true-up 2.000 − 1.235 = 0.765; credits 0.500; total 1.235 + 0.765 − 0.500 = 1.500
    assert totals(invoice) == ("1.235", "0.000", "0.765", "0.500", "1.500")


def test_tenants_with_usage_but_no_customer_entry_are_listed_unbilled_and_sorted() -> None:
    lines = [
        event("1", {"v": 1}, type="t", subject="org-z"),
        event("2", {"v": 1}, type="t", subject="org-42"),
        event("3", {"v": 1}, type="t", subject="org-a"),
    ]
    result = rate(priced("1"), lines)
    assert [invoice["tenant"] for invoice in result["invoices"]] == ["org-42"]
    assert result["unbilled_tenants"] == ["org-a", "org-z"]


# --- line order ---------------------------------------------------------------------------------

GROUP_VALUES = st.sampled_from(["5", "a", "b", "", "None", "True"]) | st.none() | st.booleans()
GROUP_VALUES |= st.integers(-3, 5) | st.sampled_from([Decimal("5"), Decimal("5.0"), Decimal("-0.5")])


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(
        st.tuples(st.sampled_from(["m", "n", "m2"]), st.lists(GROUP_VALUES, max_size=3).map(tuple)),
        unique=True,
        max_size=12,
    ),
    text_only=st.booleans(),
)
def test_usage_is_sorted_in_usage_order_whether_its_groups_are_text_or_not(
    keys: list[tuple[str, tuple[Any, ...]]], text_only: bool
) -> None:
    # GIVEN a term's usage keys in any order, their group values all text or of every kind a group holds
    if text_only:
        keys = list({(meter, tuple(str(value) for value in group)): None for meter, group in keys})
    items = [(key, Fraction(number)) for number, key in enumerate(keys)]
    # WHEN they are sorted for the invoice
    sort_usage(items)
    # THEN the order is usage_order's: meter key, then the group values as text, null last, by type
    assert items == sorted(items, key=usage_order)
