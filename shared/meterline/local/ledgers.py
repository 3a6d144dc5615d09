"""What the pipeline's ledgers say: its closed invoices and its event counts, in the shapes
`meterline rate` prints (SPEC §4), so the two can be compared line by line."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from meterline.catalog import V1_CREDITS_PREFIX, Catalog
from meterline.credits import Drawdown
from meterline.invoice import Invoice, Line
from meterline.money import Money
from meterline.offline import Summary
from meterline.periods import Period
from meterline.pipeline.outcomes import OutcomesLedger
from meterline.pipeline.usage_ledger import UsageLedger
from meterline.ports import Store
from meterline.terms import Days, terms


class LedgerCounts:
    """Every delivered record's outcome: accepted usage by period, duplicates, rejects by reason;
    over one cell's ledgers, or summed over several cells'."""

    def __init__(self, *stores: Store) -> None:
        self.accepted_by_period: Counter[Period] = Counter()
        self.tenant_days_by_period: dict[Period, set[tuple[str, int]]] = {}
        self.duplicates = 0
        self.rejected_by_reason: Counter[str] = Counter()
        for store in stores:
            self._count(store)

    def _count(self, store: Store) -> None:
        for item in UsageLedger(store).items():
            time = datetime.fromisoformat(str(item["time"]))
            period = Period.of(time)
            self.accepted_by_period[period] += 1
            self.tenant_days_by_period.setdefault(period, set()).add((str(item["subject"]), time.day))
        for item in OutcomesLedger(store).items():
            if item["outcome"] == "duplicate":
                self.duplicates += 1
            elif item["outcome"] == "rejected":  # not "retrying": a record to be delivered again
                self.rejected_by_reason[str(item["reason"])] += 1

    @property
    def received(self) -> int:
        return sum(self.accepted_by_period.values()) + self.duplicates + sum(self.rejected_by_reason.values())

    def unbilled(self, catalog: Catalog, period: Period, at_close: list[str]) -> list[str]:
        """Tenants with usage in ``period`` on a day no subscription covers: those its close found,
        and those whose usage arrived after it closed (no invoice bills them)."""
        covered: dict[str, list[Days]] = {}
        late = set()
        for tenant, day in self.tenant_days_by_period.get(period, ()):
            if tenant not in covered:
                customer = catalog.customers.get(tenant)
                covered[tenant] = [term.days for term in terms(catalog, customer, period)] if customer else []
            if not any(first <= day < end for first, end in covered[tenant]):
                late.add(tenant)
        return sorted(set(at_close) | late)

    def summary(self, period: Period) -> Summary:
        """SPEC §4's summary for ``period``: accepted usage of other periods counts as out of it."""
        accepted = self.accepted_by_period[period]
        return Summary(
            received=self.received,
            accepted=accepted,
            duplicates=self.duplicates,
            out_of_period=sum(self.accepted_by_period.values()) - accepted,
            rejected_by_reason=Counter(self.rejected_by_reason),
        )


def invoice_from_json(body: dict[str, Any], period: Period) -> Invoice:
    """An invoice as the pipeline stored it, back as the core's value (for display)."""
    currency = body["currency"]
    lines = tuple(
        Line(
            entry["meter"],
            entry["group"],
            Fraction(Decimal(entry["quantity"])),
            Money.parse(entry["amount"], currency),
        )
        for entry in body["lines"]
    )
    return Invoice(
        tenant=body["tenant"],
        period=period,
        plan=body["plan"],
        version=int(body["version"]),
        currency=currency,
        lines=lines,
        subtotal=Money.parse(body["subtotal"], currency),
        discount=Money.parse(body["discount"], currency),
        commitment_true_up=Money.parse(body["commitment_true_up"], currency),
        credits_applied=Money.parse(body["credits_applied"], currency),
        total=Money.parse(body["total"], currency),
        subscription=body["subscription"],
        credit_drawdowns=tuple(
            Drawdown(d["grant"], Money.parse(d["amount"], currency)) for d in body["credit_drawdowns"]
        ),
        catalog_digest=body["catalog_digest"],
        number=body["number"],
    )


def credit_balances(
    catalog: Catalog, invoices: dict[str, list[dict[str, Any]]], amendments: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each grant the pipeline's documents drew from, or the catalog grants: its amount, what
    invoices and amendments drew, and what is left (a v1 per-period grant's rest expired)."""
    drawn: dict[tuple[str, str], Decimal] = {}
    for document in [*(i for period in invoices.values() for i in period), *amendments]:
        for drawdown in document["credit_drawdowns"]:
            key = (str(document["tenant"]), str(drawdown["grant"]))
            drawn[key] = drawn.get(key, Decimal(0)) + Decimal(drawdown["amount"])
    amounts: dict[tuple[str, str], Decimal] = {}
    for tenant, customer in catalog.customers.items():
        for grant in customer.credit_grants:
            amounts[(tenant, grant.id)] = grant.amount
        if customer.credits is not None:
            for period in invoices:
                amounts[(tenant, f"{V1_CREDITS_PREFIX}{period}")] = customer.credits
    return [
        {
            "tenant": tenant,
            "grant": grant,
            "amount": str(amounts.get((tenant, grant), Decimal(0))),
            "drawn": str(drawn.get((tenant, grant), Decimal(0))),
            "left": str(amounts.get((tenant, grant), Decimal(0)) - drawn.get((tenant, grant), Decimal(0))),
        }
        for tenant, grant in sorted(amounts.keys() | drawn.keys())
    ]
