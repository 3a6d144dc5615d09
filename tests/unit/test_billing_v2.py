"""SPEC v2 rating (§3, §5, §6): subscriptions over time, proration, credit grants as balances,
time-weighted carry-over, the billing start, and usage no subscription covers.

Expected values are worked out by hand in the comment beside them.
"""

from __future__ import annotations

import json
from typing import Any

from meterline.offline import rate_cells
from meterline.periods import Period
from tests.helpers import catalog, event, invoice_of, rate

OCTOBER, NOVEMBER = Period(2026, 10), Period(2026, 11)

METERS = """
meters:
  - {key: gb, event_type: t, aggregation: sum, value: v}
  - {key: cku_hours, event_type: s, aggregation: time_weighted, value: units}
"""


def plans(customer: str, *, extra: str = "") -> str:
    """Two plans: small (1 per GB, 10 per month of support, a 300 commitment) and big (graduated)."""
    return (
        METERS
        + """
plans:
  - key: small
    version: 1
    effective_from: "2026-01-01"
    currency: USD
    minimum_commit: "300"
    charges:
      - {meter: gb, model: per_unit, unit_price: "1"}
      - {meter: cku_hours, model: per_unit, unit_price: "0.5"}
      - {key: support, model: flat, amount: "90"}
  - key: big
    version: 1
    effective_from: "2026-01-01"
    currency: USD
    charges:
      - meter: gb
        model: graduated
        tiers: [{up_to: "10", unit_price: "2"}, {up_to: null, unit_price: "1"}]
      - {meter: cku_hours, model: per_unit, unit_price: "1"}
      - {key: support, model: flat, amount: "300"}
customers:
"""
        + customer
        + extra
    )


def gb(event_id: str, value: str, time: str, subject: str = "org-42") -> str:
    return event(event_id, {"v": value}, type="t", time=time, subject=subject)


def units(event_id: str, value: str, time: str, subject: str = "org-42") -> str:
    return event(event_id, {"units": value}, type="s", time=time, subject=subject)


def rate_range(catalog_text: str, lines: list[str], first: Period, last: Period) -> list[dict[str, Any]]:
    results = rate_cells(catalog(catalog_text), {"local": lines}, first, last)
    documents: list[dict[str, Any]] = json.loads(json.dumps([result.to_json() for result in results]))
    return documents


def parts(invoice: dict[str, Any]) -> tuple[str, ...]:
    """subtotal, discount, commitment_true_up, credits_applied, total"""
    return tuple(
        invoice[key] for key in ("subtotal", "discount", "commitment_true_up", "credits_applied", "total")
    )


def amounts(invoice: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {line["meter"]: (line["quantity"], line["amount"]) for line in invoice["lines"]}


# --- subscriptions and proration -------------------------------------------------------------------


def test_a_mid_month_plan_change_gives_two_prorated_invoices_with_tiers_counted_per_invoice() -> None:
    # GIVEN small until 16 November, big from then, and 8 GB before the change and 8 GB after
    catalog_text = plans(
        """  - tenant: org-42
    subscriptions:
      - {plan: small, from: "2026-01-01", to: "2026-11-16"}
      - {plan: big, from: "2026-11-16"}
"""
    )
    lines = [gb("a", "8", "2026-11-03T00:00:00Z"), gb("b", "8", "2026-11-20T00:00:00Z")]

    # WHEN November is rated
    document = rate(catalog(catalog_text), lines, NOVEMBER)

    # THEN two invoices, each with its own days: 1-15 under small, 16-30 under big
    small, big = document["invoices"]
    assert (small["subscription"], big["subscription"]) == ("small@2026-01-01", "big@2026-11-16")
    # small: 8 GB × 1 = 8; support 90 × 15/30 = 45; commitment 300 × 15/30 = 150 → true-up 150 − 53 = 97
    assert amounts(small) == {"gb": ("8", "8.00"), "support": ("0.5", "45.00")}
    assert parts(small) == ("53.00", "0.00", "97.00", "0.00", "150.00")
    # big: its own tiers from 0: 8 GB × 2 = 16 (16 GB together would have cost 26); support 300 × 15/30
    assert amounts(big) == {"gb": ("8", "16.00"), "support": ("0.5", "150.00")}
    assert parts(big) == ("166.00", "0.00", "0.00", "0.00", "166.00")


def test_a_subscription_starting_mid_month_prorates_its_flat_fee_and_commitment() -> None:
    # GIVEN a customer subscribing from 21 November (10 of 30 days), with usage before and after
    catalog_text = plans("""  - tenant: org-42\n    subscriptions: [{plan: small, from: "2026-11-21"}]\n""")
    lines = [gb("a", "5", "2026-11-10T00:00:00Z"), gb("b", "7", "2026-11-25T00:00:00Z")]

    document = rate(catalog(catalog_text), lines, NOVEMBER)

    # THEN support 90 × 10/30 = 30.00, commitment 300 × 10/30 = 100.00: true-up 100 − 37 = 63
    invoice = invoice_of(document)
    assert amounts(invoice) == {"gb": ("7", "7.00"), "support": ("0.333333333333333333", "30.00")}
    assert parts(invoice) == ("37.00", "0.00", "63.00", "0.00", "100.00")
    # AND the 5 GB of 10 November, before it subscribed, are reported, not billed
    assert document["unbilled_usage"] == [
        {"tenant": "org-42", "period": "2026-11", "meter": "gb", "group": {}, "quantity": "5",
         "reason": "no_subscription"}
    ]  # fmt: skip
    assert document["unbilled_tenants"] == ["org-42"]


def test_a_plan_version_starting_mid_period_applies_from_the_next_period() -> None:
    # GIVEN small v2 (2 per GB) from 10 November
    catalog_text = plans("  - {tenant: org-42, plan: small}\n").replace(
        "  - key: big\n",
        """  - key: small
    version: 2
    effective_from: "2026-11-10"
    currency: USD
    charges: [{meter: gb, model: per_unit, unit_price: "2"}]
  - key: big
""",
    )
    lines = [gb("a", "5", "2026-11-20T00:00:00Z"), gb("b", "5", "2026-12-05T00:00:00Z")]
    november, december = rate_range(catalog_text, lines, NOVEMBER, Period(2026, 12))
    # THEN November stays on v1 (1 per GB), December is on v2 (2 per GB)
    assert (invoice_of(november)["version"], amounts(invoice_of(november))["gb"]) == (1, ("5", "5.00"))
    assert (invoice_of(december)["version"], amounts(invoice_of(december))["gb"]) == (2, ("5", "10.00"))


# --- credit grants ---------------------------------------------------------------------------------


def with_grants(grants: str, *, plan: str = "big") -> str:
    """big without support: the invoice is exactly its usage (2 per GB up to 10)."""
    return plans(f"  - tenant: org-42\n    plan: {plan}\n" + grants).replace(
        '      - {key: support, model: flat, amount: "300"}\n', ""
    )


def test_a_grant_spanning_two_periods_runs_out_in_the_second() -> None:
    # GIVEN 100.00 granted from 1 October, never expiring; October's 60 GB cost 10 × 2 + 50 × 1 = 70.00,
    # November's 50 GB 60.00
    catalog_text = with_grants(
        '    credit_grants: [{id: welcome, amount: "100", effective_from: "2026-10-01"}]\n'
    )
    lines = [gb("a", "60", "2026-10-10T00:00:00Z"), gb("b", "50", "2026-11-10T00:00:00Z")]

    # WHEN both months are rated, and November alone
    october, november = rate_range(catalog_text, lines, OCTOBER, NOVEMBER)
    alone = rate(catalog(catalog_text), lines, NOVEMBER)

    # THEN October draws 70.00 of it; November the 30.00 left and owes 30.00
    assert invoice_of(october)["credit_drawdowns"] == [{"grant": "welcome", "amount": "70.00"}]
    assert parts(invoice_of(october)) == ("70.00", "0.00", "0.00", "70.00", "0.00")
    assert invoice_of(november)["credit_drawdowns"] == [{"grant": "welcome", "amount": "30.00"}]
    assert parts(invoice_of(november)) == ("60.00", "0.00", "0.00", "30.00", "30.00")
    assert november["credit_balances"] == [
        {"tenant": "org-42", "grant": "welcome", "amount": "100.00", "drawn": "100.00", "expired": "0.00",
         "remaining": "0.00"}
    ]  # fmt: skip
    # AND November rated alone knows what October drew
    assert alone["invoices"] == november["invoices"]


def test_a_grant_that_expires_pays_nothing_after_and_its_rest_expires() -> None:
    # GIVEN 100.00 from 1 October expiring 1 November, and an evergreen 20.00 of lower priority
    catalog_text = with_grants(
        """    credit_grants:
      - {id: promo, amount: "100", effective_from: "2026-10-01", expires: "2026-11-01", priority: 0}
      - {id: goodwill, amount: "20", effective_from: "2026-10-01", priority: 1}
"""
    )
    lines = [gb("a", "5", "2026-10-10T00:00:00Z"), gb("b", "5", "2026-11-10T00:00:00Z")]

    october, november = rate_range(catalog_text, lines, OCTOBER, NOVEMBER)

    # THEN October's 10.00 comes from promo (priority 0); November's 10.00 from goodwill alone
    assert invoice_of(october)["credit_drawdowns"] == [{"grant": "promo", "amount": "10.00"}]
    assert invoice_of(november)["credit_drawdowns"] == [{"grant": "goodwill", "amount": "10.00"}]
    # AND promo's 90.00 left expired with October: amount = drawn + expired + remaining
    balances = {balance["grant"]: balance for balance in october["credit_balances"]}
    assert (balances["promo"]["drawn"], balances["promo"]["expired"], balances["promo"]["remaining"]) == (
        "10.00",
        "90.00",
        "0.00",
    )
    assert [balance["grant"] for balance in november["credit_balances"]] == ["goodwill"]


def test_grants_are_drawn_by_priority_then_earlier_expiry_then_start_then_id() -> None:
    # GIVEN four grants of 5.00 that all may pay November, and 15.00 due
    catalog_text = with_grants(
        """    credit_grants:
      - {id: d-late, amount: "5", effective_from: "2026-11-01", priority: 0}
      - {id: c-never, amount: "5", effective_from: "2026-10-01", priority: 0}
      - {id: b-soon, amount: "5", effective_from: "2026-11-01", expires: "2026-12-15", priority: 0}
      - {id: a-last, amount: "5", effective_from: "2026-09-01", priority: 1}
"""
    )
    invoice = invoice_of(rate(catalog(catalog_text), [gb("a", "7.5", "2026-11-10T00:00:00Z")], NOVEMBER))
    # THEN the one expiring first, then (no expiry) the earlier start, then the later; priority 1 is untouched
    assert invoice["credit_drawdowns"] == [
        {"grant": "b-soon", "amount": "5.00"},
        {"grant": "c-never", "amount": "5.00"},
        {"grant": "d-late", "amount": "5.00"},
    ]
    assert parts(invoice) == ("15.00", "0.00", "0.00", "15.00", "0.00")


def test_v1_credits_are_a_fresh_grant_each_period_that_never_carries_over() -> None:
    # GIVEN v1 credits of 50.00; 30 GB in October (10 × 2 + 20 × 1 = 40.00 due), 60 in November (70.00)
    catalog_text = with_grants('    credits: "50"\n')
    lines = [gb("a", "30", "2026-10-10T00:00:00Z"), gb("b", "60", "2026-11-10T00:00:00Z")]

    october, november = rate_range(catalog_text, lines, OCTOBER, NOVEMBER)

    # THEN October uses 40.00 of its 50.00 (the other 10.00 expires), November its own 50.00
    assert invoice_of(october)["credit_drawdowns"] == [{"grant": "credits:2026-10", "amount": "40.00"}]
    assert invoice_of(november)["credit_drawdowns"] == [{"grant": "credits:2026-11", "amount": "50.00"}]
    assert parts(invoice_of(november)) == ("70.00", "0.00", "0.00", "50.00", "20.00")
    assert october["credit_balances"] == [
        {"tenant": "org-42", "grant": "credits:2026-10", "amount": "50.00", "drawn": "40.00",
         "expired": "10.00", "remaining": "0.00"}
    ]  # fmt: skip


def test_a_grant_never_pays_more_than_is_due_after_discount_and_true_up() -> None:
    # GIVEN small (commitment 300) from 1 November, 500.00 of credit, 10 GB
    catalog_text = plans(
        """  - tenant: org-42
    plan: small
    credit_grants: [{id: big-grant, amount: "500", effective_from: "2026-11-01"}]
"""
    )
    invoice = invoice_of(rate(catalog(catalog_text), [gb("a", "10", "2026-11-10T00:00:00Z")], NOVEMBER))
    # THEN 10 + 90 = 100, trued up to 300, all of it paid from the grant: 300.00, total 0
    assert parts(invoice) == ("100.00", "0.00", "200.00", "300.00", "0.00")


# --- time-weighted carry-over, the billing start, negative quantities ------------------------------


def test_a_time_weighted_value_carries_over_into_the_next_period() -> None:
    # GIVEN a cluster sized to 3 at noon on 31 October, and no sample in November
    catalog_text = plans("  - {tenant: org-42, plan: big}\n")
    lines = [units("a", "3", "2026-10-31T12:00:00Z")]

    october, november = rate_range(catalog_text, lines, OCTOBER, NOVEMBER)

    # THEN October bills its 12 hours (36), November all 720 of its hours at 3: 2,160
    assert amounts(invoice_of(october))["cku_hours"] == ("36", "36.00")
    assert amounts(invoice_of(november))["cku_hours"] == ("2160", "2160.00")
    # AND the October event counts as out of November's period, though it rates November
    assert (november["summary"]["accepted"], november["summary"]["out_of_period"]) == (0, 1)


def test_a_carried_value_holds_until_the_first_sample_of_the_period() -> None:
    # GIVEN 3 from October, then 1 from 00:00 on 11 November
    catalog_text = plans("  - {tenant: org-42, plan: big}\n")
    lines = [units("a", "3", "2026-10-20T00:00:00Z"), units("b", "1", "2026-11-11T00:00:00Z")]
    invoice = invoice_of(rate(catalog(catalog_text), lines, NOVEMBER))
    # THEN 3 × 240 h (1-10 Nov) + 1 × 480 h (11-30 Nov) = 1,200
    assert amounts(invoice)["cku_hours"] == ("1200", "1200.00")


def test_an_old_event_before_the_first_period_is_out_of_period_and_bills_nothing() -> None:
    # GIVEN billing from October 2026, and a March event (a cluster sized then, and traffic)
    catalog_text = plans("  - {tenant: org-42, plan: big}\n", extra='billing: {first_period: "2026-10"}\n')
    lines = [units("a", "4", "2026-03-05T00:00:00Z"), gb("b", "9", "2026-03-05T00:00:00Z")]

    march = rate(catalog(catalog_text), lines, Period(2026, 3))
    october = rate(catalog(catalog_text), lines, OCTOBER)

    # THEN March has no invoice and counts both events as out of period
    assert march["invoices"] == [] and march["unbilled_usage"] == []
    assert (march["summary"]["accepted"], march["summary"]["out_of_period"]) == (0, 2)
    # AND October, the first billed period, has no usage at all: nothing before it carries in
    assert amounts(invoice_of(october)) == {"support": ("1", "300.00")}


def test_a_negative_minimum_is_priced_as_zero_and_keeps_its_quantity() -> None:
    catalog_text = METERS.replace(
        "  - {key: cku_hours",
        "  - {key: low, event_type: x, aggregation: min, value: v}\n  - {key: cku_hours",
    ) + (
        """plans:
  - {key: p, version: 1, effective_from: "2026-01-01", currency: USD,
     charges: [{meter: low, model: per_unit, unit_price: "3"}]}
customers: [{tenant: org-42, plan: p}]
"""
    )
    lines = [event("a", {"v": "-2.5"}, type="x"), event("b", {"v": "4"}, type="x")]
    invoice = invoice_of(rate(catalog(catalog_text), lines, NOVEMBER))
    assert invoice["lines"] == [{"meter": "low", "group": {}, "quantity": "-2.5", "amount": "0.00"}]
    assert invoice["total"] == "0.00"


# --- unbilled usage --------------------------------------------------------------------------------


def test_unbilled_usage_has_a_reason_and_with_billed_usage_adds_up_to_the_accepted() -> None:
    # GIVEN org-42 subscribed 1-20 November only, and org-x with no customer entry at all
    catalog_text = plans(
        """  - tenant: org-42
    subscriptions: [{plan: small, from: "2026-01-01", to: "2026-11-21"}]
"""
    )
    lines = [
        gb("a", "1.5", "2026-11-02T00:00:00Z"),
        gb("b", "2.25", "2026-11-25T00:00:00Z"),  # after the subscription ended
        units("c", "2", "2026-11-20T00:00:00Z"),  # holds 2 from 20 Nov to the end: 1 day billed, 10 not
        gb("d", "4", "2026-11-03T00:00:00Z", subject="org-x"),
    ]

    document = rate(catalog(catalog_text), lines, NOVEMBER)

    assert amounts(invoice_of(document))["gb"] == ("1.5", "1.50")
    assert amounts(invoice_of(document))["cku_hours"] == ("48", "24.00")  # 2 × 24 h
    assert document["unbilled_usage"] == [
        {"tenant": "org-42", "period": "2026-11", "meter": "cku_hours", "group": {}, "quantity": "480",
         "reason": "no_subscription"},
        {"tenant": "org-42", "period": "2026-11", "meter": "gb", "group": {}, "quantity": "2.25",
         "reason": "no_subscription"},
        {"tenant": "org-x", "period": "2026-11", "meter": "gb", "group": {}, "quantity": "4",
         "reason": "no_customer"},
    ]  # fmt: skip
    # billed + unbilled = accepted: 1.5 + 2.25 = 3.75 GB; 48 + 480 = 2 × 264 h of cku_hours
    assert document["unbilled_tenants"] == ["org-42", "org-x"]


def test_a_catalog_without_plans_bills_nothing_and_reports_every_tenant_unbilled() -> None:
    # GIVEN meters only: no plan, so no first period to bill from
    document = rate(catalog(METERS), [gb("a", "2", "2026-11-02T00:00:00Z")], NOVEMBER)
    # THEN the usage is accepted, and unbilled for want of a customer
    assert (document["summary"]["accepted"], document["invoices"]) == (1, [])
    assert [usage["reason"] for usage in document["unbilled_usage"]] == ["no_customer"]
