"""The catalog: a bad one fails in one line naming file, line, entry and field; a good one loads exactly."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from meterline.catalog import (
    Aggregation,
    Billing,
    CatalogError,
    CreditGrant,
    Numbering,
    NumberingScope,
    PricingModel,
    Subscription,
    load_catalog,
    parse_catalog,
    sample_catalog,
)
from meterline.cli import main
from meterline.periods import Period

BAD = Path(__file__).parent.parent / "catalogs" / "bad"
BAD_CATALOGS = sorted(BAD.glob("*.yaml"))
MARKER = "# <-"


def expectation(path: Path) -> tuple[str, int | None]:
    """The fixture's first line says the message; a ``# <-`` marks the line it must name, if any."""
    lines = path.read_text(encoding="utf-8").splitlines()
    expected = lines[0].removeprefix("# expect: ")
    marked = [number for number, line in enumerate(lines, start=1) if line.endswith(MARKER)]
    return expected, marked[0] if marked else None


MINIMAL = """
meters:
  - {key: ingress_gb, event_type: kafka.ingress, aggregation: sum, value: bytes}
plans:
  - key: standard
    effective_from: 2026-01-01
    currency: USD
    charges:
      - {meter: ingress_gb, model: per_unit, unit_price: 0.1}
customers:
  - {tenant: org-42, plan: standard}
"""


def test_the_corpus_covers_at_least_fifteen_ways_to_get_a_catalog_wrong() -> None:
    assert len(BAD_CATALOGS) >= 15


@pytest.mark.parametrize("path", BAD_CATALOGS, ids=lambda path: path.stem)
def test_a_bad_catalog_is_refused_with_its_file_line_entry_and_field(path: Path) -> None:
    # GIVEN a catalog with one mistake, and the message it must produce
    expected, line = expectation(path)

    # WHEN it is loaded
    with pytest.raises(CatalogError) as raised:
        load_catalog(path)

    # THEN the one-line message names the file (and the marked line), the entry.field and the problem
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:")
    if line is not None:
        assert message.startswith(f"{path}:{line}: "), message
    assert expected in message


@pytest.mark.parametrize("path", BAD_CATALOGS, ids=lambda path: path.stem)
def test_the_command_line_reports_a_bad_catalog_in_one_line_without_a_traceback(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a bad catalog and an empty usage file
    usage = tmp_path / "usage.ndjson"
    usage.write_bytes(b"")

    # WHEN meterline rates with it
    status = main(["rate", "--catalog", str(path), "--usage", str(usage), "--period", "2026-11"])

    # THEN it exits 2 with a single error line naming the file
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert err.startswith(f"meterline: error: {path}:")
    assert "Traceback" not in err


def test_a_missing_file_is_named_with_the_reason(tmp_path: Path) -> None:
    # GIVEN a path where no catalog is
    missing = tmp_path / "nowhere.yaml"

    # WHEN / THEN
    with pytest.raises(CatalogError, match=r"nowhere\.yaml: cannot read the catalog \(No such file"):
        load_catalog(missing)


def test_a_directory_is_not_a_catalog(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read the catalog"):
        load_catalog(tmp_path)


def test_a_catalog_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    # GIVEN a Latin-1 file
    path = tmp_path / "latin1.yaml"
    path.write_bytes("meters: []  # café\n".encode("latin-1"))

    # WHEN / THEN
    with pytest.raises(CatalogError, match=r"latin1\.yaml: the catalog is not UTF-8 text"):
        load_catalog(path)


def test_numbers_are_exact_decimals_whether_quoted_or_not() -> None:
    # GIVEN prices written bare, quoted and with digit separators
    catalog = parse_catalog(
        MINIMAL.replace(
            "  - {tenant: org-42, plan: standard}",
            """  - tenant: org-42
    plan: standard
    credits: 1_000.10
    spend_alerts: ["500", 100.5]""",
        )
    )

    # THEN each is the decimal its text says, never a float's neighbour
    charge = catalog.plans["standard"][0].charges[0]
    assert charge.unit_price == Decimal("0.1")
    assert type(charge.unit_price) is Decimal
    customer = catalog.customers["org-42"]
    assert customer.credits == Decimal("1000.10")
    assert customer.spend_alerts == (Decimal("100.5"), Decimal("500"))


def test_bare_and_quoted_dates_both_read_as_dates() -> None:
    catalog = parse_catalog(MINIMAL)
    quoted = parse_catalog(MINIMAL.replace("2026-01-01", '"2026-01-01"'))
    assert catalog.plans["standard"][0].effective_from == date(2026, 1, 1)
    assert quoted.plans["standard"][0].effective_from == date(2026, 1, 1)


def test_the_version_in_effect_is_the_latest_that_started_by_the_period_start() -> None:
    # GIVEN versions listed out of order
    text = MINIMAL.replace(
        "customers:",
        """  - key: standard
    version: 3
    effective_from: 2026-12-01
    currency: USD
    charges: [{meter: ingress_gb, model: per_unit, unit_price: "0.07"}]
  - key: standard
    version: 2
    effective_from: 2026-06-01
    currency: USD
    charges: [{meter: ingress_gb, model: per_unit, unit_price: "0.08"}]
customers:""",
    )
    catalog = parse_catalog(text)

    # THEN versions are kept oldest first and picked by the period's start
    assert [plan.version for plan in catalog.plans["standard"]] == [1, 2, 3]
    assert catalog.plan_in_effect("standard", Period(2025, 12)) is None
    assert catalog.plan_in_effect("standard", Period(2026, 5)).version == 1  # type: ignore[union-attr]
    assert catalog.plan_in_effect("standard", Period(2026, 6)).version == 2  # type: ignore[union-attr]
    assert catalog.plan_in_effect("standard", Period(2026, 11)).version == 2  # type: ignore[union-attr]
    assert catalog.plan_in_effect("standard", Period(2026, 12)).version == 3  # type: ignore[union-attr]


def test_contract_overrides_replace_the_plans_charge_and_add_new_ones() -> None:
    # GIVEN a customer overriding the ingress price and adding a flat fee
    text = MINIMAL.replace(
        "  - {tenant: org-42, plan: standard}",
        """  - tenant: org-42
    plan: standard
    charges:
      - {key: onboarding, model: flat, amount: "250"}
      - {meter: ingress_gb, model: per_unit, unit_price: "0.02"}""",
    )
    catalog = parse_catalog(text)
    customer = catalog.customers["org-42"]

    # WHEN the charges for its plan are resolved
    charges = catalog.charges_for(customer, catalog.plans["standard"][0])

    # THEN the override replaces the plan's charge in place, and the new one follows
    assert [(charge.line_key, charge.unit_price, charge.amount) for charge in charges] == [
        ("ingress_gb", Decimal("0.02"), None),
        ("onboarding", None, Decimal("250")),
    ]


def test_meters_reading_one_event_type_are_found_together_and_paths_may_be_dotted() -> None:
    catalog = parse_catalog(
        MINIMAL.replace(
            "plans:",
            """  - {key: ingress_requests, event_type: kafka.ingress, aggregation: count}
  - {key: peak_lag, event_type: kafka.ingress, aggregation: max, value: consumer.lag}
plans:""",
        )
    )
    keys = [meter.key for meter in catalog.meters_by_type["kafka.ingress"]]
    assert keys == ["ingress_gb", "ingress_requests", "peak_lag"]
    assert catalog.meters["ingress_requests"].value is None
    assert catalog.meters["peak_lag"].value == ("consumer", "lag")


def test_the_sample_catalog_models_a_streaming_vendor_across_currencies_and_models() -> None:
    # GIVEN the catalog shipped with the package
    catalog = sample_catalog()

    # THEN it has the vendor's meters, several plans with versions, three currencies and every model
    assert 8 <= len(catalog.meters) <= 12
    aggregations = {meter.aggregation for meter in catalog.meters.values()}
    assert {Aggregation.SUM, Aggregation.TIME_WEIGHTED, Aggregation.MAX} <= aggregations
    assert {"basic", "standard", "enterprise", "dedicated"} <= catalog.plans.keys()
    assert any(len(versions) >= 2 for versions in catalog.plans.values())
    currencies = {plan.currency for versions in catalog.plans.values() for plan in versions}
    assert {"USD", "EUR", "JPY"} <= currencies
    charges = [
        charge
        for versions in catalog.plans.values()
        for plan in versions
        for charge in (
            *plan.charges,
            *(c for customer in catalog.customers.values() for c in customer.charges),
        )
    ]
    assert {charge.model for charge in charges} == set(PricingModel)
    customers = list(catalog.customers.values())
    assert 10 <= len(customers) <= 20
    assert any(customer.charges for customer in customers)
    assert any(customer.credits for customer in customers)
    assert any(customer.spend_alerts for customer in customers)
    plans = [plan for versions in catalog.plans.values() for plan in versions]
    assert any(plan.minimum_commit for plan in plans)
    assert any(plan.discount_percent for plan in plans)


def test_the_sample_catalog_file_is_the_one_the_package_loads() -> None:
    path = Path(__file__).parents[2] / "shared" / "meterline" / "samples" / "catalog.yaml"
    assert load_catalog(path).meters == sample_catalog().meters


# --- SPEC v2: subscriptions, credit grants, billing ------------------------------------------------

V2 = MINIMAL.replace(
    "customers:",
    """  - key: enterprise
    effective_from: 2026-03-01
    currency: USD
    charges: [{meter: ingress_gb, model: per_unit, unit_price: "0.07"}]
customers:""",
)


def test_a_v1_plan_is_one_open_ended_subscription_from_the_plans_first_version() -> None:
    catalog = parse_catalog(MINIMAL)
    assert catalog.customers["org-42"].subscriptions == (Subscription("standard", date(2026, 1, 1), None),)


def test_subscriptions_are_kept_earliest_first_with_a_key_naming_plan_and_start() -> None:
    # GIVEN a plan change on 15 November, listed newest first
    catalog = parse_catalog(
        V2.replace(
            "  - {tenant: org-42, plan: standard}",
            """  - tenant: org-42
    subscriptions:
      - {plan: enterprise, from: "2026-11-15", to: null}
      - {plan: standard, from: 2026-03-15, to: 2026-11-15}""",
        )
    )
    subscriptions = catalog.customers["org-42"].subscriptions
    assert subscriptions == (
        Subscription("standard", date(2026, 3, 15), date(2026, 11, 15)),
        Subscription("enterprise", date(2026, 11, 15), None),
    )
    assert [subscription.key for subscription in subscriptions] == [
        "standard@2026-03-15",
        "enterprise@2026-11-15",
    ]


def test_credit_grants_are_read_exactly_with_priority_zero_and_no_expiry_by_default() -> None:
    catalog = parse_catalog(
        MINIMAL.replace(
            "  - {tenant: org-42, plan: standard}",
            """  - tenant: org-42
    plan: standard
    credit_grants:
      - {id: welcome, amount: "500.10", effective_from: "2026-10-01", expires: "2027-01-01", priority: 1}
      - {id: goodwill, amount: 20, effective_from: 2026-11-01}""",
        )
    )
    assert catalog.customers["org-42"].credit_grants == (
        CreditGrant("welcome", Decimal("500.10"), date(2026, 10, 1), date(2027, 1, 1), 1),
        CreditGrant("goodwill", Decimal("20"), date(2026, 11, 1), None, 0),
    )


def test_billing_defaults_start_at_the_earliest_version_of_any_plan() -> None:
    # GIVEN plans starting in January and March 2026 and no billing section
    catalog = parse_catalog(V2)
    assert catalog.billing == Billing()
    assert catalog.first_period == Period(2026, 1)
    assert (catalog.billing.grace, catalog.billing.cell_wait) == (timedelta(hours=1), timedelta(hours=6))


def test_billing_settings_are_read_with_iso_8601_durations() -> None:
    catalog = parse_catalog(
        V2
        + """billing:
  first_period: "2026-10"
  grace: PT1H30M
  amend_periods: 0
  numbering: {prefix: "ML-", per: customer}
  cell_wait: P1DT6H
"""
    )
    assert catalog.billing == Billing(
        Period(2026, 10),
        timedelta(hours=1, minutes=30),
        0,
        Numbering("ML-", NumberingScope.CUSTOMER),
        timedelta(days=1, hours=6),
    )
    assert catalog.first_period == Period(2026, 10)


def test_the_digest_is_the_sha256_of_the_files_bytes_line_endings_included(tmp_path: Path) -> None:
    # GIVEN the same catalog saved with Unix and with Windows line endings
    unix, windows = tmp_path / "unix.yaml", tmp_path / "windows.yaml"
    unix.write_bytes(MINIMAL.encode())
    windows.write_bytes(MINIMAL.replace("\n", "\r\n").encode())

    # WHEN each is loaded, and the text parsed
    digests = [load_catalog(unix).digest, load_catalog(windows).digest, parse_catalog(MINIMAL).digest]

    # THEN each digest is that of the bytes read: equal for the same bytes, different otherwise
    assert digests[0] == hashlib.sha256(unix.read_bytes()).hexdigest() == digests[2]
    assert digests[1] == hashlib.sha256(windows.read_bytes()).hexdigest() != digests[0]
    assert load_catalog(windows).customers == load_catalog(unix).customers


def test_the_sample_catalog_keeps_its_v1_meaning_one_subscription_each_and_credits_per_period() -> None:
    catalog = sample_catalog()
    for customer in catalog.customers.values():
        (subscription,) = customer.subscriptions
        assert subscription.start == catalog.plans[subscription.plan][0].effective_from
        assert subscription.end is None
        assert customer.credit_grants == ()
    assert catalog.first_period == Period(2026, 10)  # set: the pipeline invoices the demo's months only
    assert catalog.customers["org-cyberdyne"].credits == Decimal("400.00")
