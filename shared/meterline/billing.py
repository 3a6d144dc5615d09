"""Billing one period: every tenant's invoices, one per subscription active in it, the usage no
subscription covers, and the time-weighted values carried into the next period (SPEC §3, §5, §6).

The one place the rules meet: `meterline rate` bills period after period with it, the pipeline's
close bills each period with it as it closes, and running charges re-rate the open period with it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from meterline.catalog import Catalog, Customer
from meterline.credits import Credits
from meterline.invoice import Invoice, UnbilledReason, UnbilledUsage, group_json
from meterline.periods import Period
from meterline.rating import priced_meters, rate_term, sort_usage
from meterline.splits import Opening, UsageSplitError, closing_values, split_usage
from meterline.terms import terms
from meterline.usage import Segments, StateKey, UsageBook

Openings = Mapping[str, Opening]
"""Time-weighted values in force at a period's start, by tenant."""


@dataclass
class PeriodBill:
    period: Period
    invoices: list[Invoice] = field(default_factory=list)
    """By tenant, then subscription start."""
    unbilled: list[UnbilledUsage] = field(default_factory=list)
    closing: dict[str, dict[StateKey, Decimal]] = field(default_factory=dict)
    """Time-weighted values in force at the period's end, by tenant: the next period's openings."""

    @property
    def unbilled_tenants(self) -> list[str]:
        return sorted({usage.tenant for usage in self.unbilled})


def bill_period(
    catalog: Catalog,
    book: UsageBook,
    period: Period,
    openings: Openings,
    credits: Mapping[str, Credits] | None = None,
    *,
    rated: Collection[str] | None = None,
    until: datetime | None = None,
) -> PeriodBill:
    """Bill every customer (``rated``: only those tenants) for the period's usage in ``book``.

    ``credits`` holds the balances left by earlier periods and is drawn from. ``until``: spend to
    date, a draft's figures (time-weighted values hold until then, not until the period ends).
    Closing values cover every tenant, rated or not.
    """
    bill = PeriodBill(period)
    billable = period >= catalog.first_period
    tenants = set(book.tenants(period)) | set(openings)
    tenants |= set(catalog.customers) if rated is None else set(rated) & catalog.customers.keys()
    for tenant in sorted(tenants):
        segments = book.segments(tenant, period)
        opening = openings.get(tenant, {})
        if billable and (rated is None or tenant in rated):
            bill_tenant(
                catalog,
                bill,
                tenant,
                segments,
                opening,
                (credits or {}).get(tenant),
                until,
            )
        else:
            bill.closing[tenant] = closing_values(catalog, period, segments, opening)
    bill.closing = {tenant: values for tenant, values in bill.closing.items() if values}
    return bill


def bill_tenant(
    catalog: Catalog,
    bill: PeriodBill,
    tenant: str,
    segments: Segments,
    opening: Opening,
    credits: Credits | None,
    until: datetime | None = None,
) -> None:
    period = bill.period
    customer = catalog.customers.get(tenant)
    active = terms(catalog, customer, period) if customer else []
    # a term's usage of a meter its plan does not price makes no line: it is not worked out
    charges = [catalog.charges_for(customer, term.plan) for term in active] if customer else []
    priced = [priced_meters(term_charges) for term_charges in charges]
    try:
        split = split_usage(catalog, period, segments, [term.days for term in active], opening, until, priced)
    except UsageSplitError as error:
        raise UsageSplitError(f"{tenant}: {error}") from None
    if customer is not None:
        if credits is not None:
            credits.open(period)
        for term, usage, term_charges in zip(active, split.parts, charges, strict=True):
            bill.invoices.append(rate_term(catalog, customer, term, usage, term_charges, credits))
        if credits is not None:
            credits.close(period)
    reason = UnbilledReason.NO_CUSTOMER if customer is None else UnbilledReason.NO_SUBSCRIPTION
    rest = list(split.rest.items())
    sort_usage(rest)
    for (meter, group), quantity in rest:
        names = catalog.meters[meter].group_by
        bill.unbilled.append(UnbilledUsage(tenant, period, meter, group_json(names, group), quantity, reason))
    bill.closing[tenant] = split.closing


def customer_credits(catalog: Catalog) -> dict[str, Credits]:
    """Fresh balances for every customer with credits: nothing drawn yet."""
    found = {}
    for tenant, customer in catalog.customers.items():
        credits = Credits.of(customer, currency_of(catalog, customer))
        if credits is not None:
            found[tenant] = credits
    return found


def currency_of(catalog: Catalog, customer: Customer) -> str:
    """The currency of the customer's first subscription (all of them, when it has credits)."""
    return catalog.plans[customer.subscriptions[0].plan][0].currency


def first_grant_period(customer: Customer) -> Period | None:
    """The first period a grant of the customer's may pay: its balances are rated from there."""
    if not customer.credit_grants:
        return None
    earliest = min(grant.effective_from for grant in customer.credit_grants)
    return Period(earliest.year, earliest.month)
