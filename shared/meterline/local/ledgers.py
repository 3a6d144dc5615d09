"""What the pipeline's ledgers say: its closed invoices and its event counts, in the shapes
`meterline rate` prints (SPEC §4), so the two can be compared line by line."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import orjson

from meterline.catalog import Catalog
from meterline.invoice import Invoice, Line
from meterline.offline import Summary
from meterline.periods import Period
from meterline.ports import Store
from meterline.topology import AGGREGATES_TABLE, INVOICES_TABLE, OUTCOMES_TABLE, USAGE_TABLE


class LedgerCounts:
    """Every delivered record's outcome: accepted usage by period, duplicates, rejects by reason."""

    def __init__(self, store: Store) -> None:
        self.accepted_by_period: Counter[Period] = Counter()
        self.tenants_by_period: dict[Period, set[str]] = {}
        for item in store.scan(USAGE_TABLE.name):
            period = Period.of(datetime.fromisoformat(str(item["time"])))
            self.accepted_by_period[period] += 1
            self.tenants_by_period.setdefault(period, set()).add(str(item["subject"]))
        self.duplicates = 0
        self.rejected_by_reason: Counter[str] = Counter()
        for item in store.scan(OUTCOMES_TABLE.name):
            if item["outcome"] == "duplicate":
                self.duplicates += 1
            else:
                self.rejected_by_reason[str(item["reason"])] += 1

    @property
    def received(self) -> int:
        return sum(self.accepted_by_period.values()) + self.duplicates + sum(self.rejected_by_reason.values())

    def unbilled(self, catalog: Catalog, period: Period, at_close: list[str]) -> list[str]:
        """Tenants with usage in ``period`` but no plan in effect: those its close found, and those
        whose usage arrived after it closed (no invoice takes an adjustment for them)."""
        late = {
            tenant
            for tenant in self.tenants_by_period.get(period, ())
            if tenant not in catalog.customers
            or catalog.plan_in_effect(catalog.customers[tenant].subscriptions[-1].plan, period) is None
        }
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


def closed_periods(store: Store) -> dict[Period, list[str]]:
    """Each closed period with its unbilled tenants (written when its close completed)."""
    return {
        Period.parse(str(item["sk"])): orjson.loads(item["unbilled"])  # type: ignore[arg-type]
        for item in store.query(AGGREGATES_TABLE.name, "closed")
        if "unbilled" in item
    }


def invoices_by_period(store: Store) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for item in store.scan(INVOICES_TABLE.name):
        found.setdefault(str(item["sk"]), []).append(orjson.loads(item["body"]))  # type: ignore[arg-type]
    for invoices in found.values():
        invoices.sort(key=lambda invoice: str(invoice["tenant"]))
    return found


def invoice_from_json(body: dict[str, Any], period: Period) -> Invoice:
    """An invoice as the pipeline stored it, back as the core's value (for display)."""
    lines: list[Line] = []
    adjustments: list[Line] = []
    for entry in body["lines"]:
        adjusts = entry.get("adjusts_period")
        line = Line(
            entry["meter"],
            entry["group"],
            Fraction(Decimal(entry["quantity"])),
            Decimal(entry["amount"]),
            Period.parse(adjusts) if adjusts else None,
        )
        (adjustments if adjusts else lines).append(line)
    return Invoice(
        tenant=body["tenant"],
        period=period,
        plan=body["plan"],
        version=int(body["version"]),
        currency=body["currency"],
        lines=tuple(lines),
        subtotal=Decimal(body["subtotal"]),
        discount=Decimal(body["discount"]),
        commitment_true_up=Decimal(body["commitment_true_up"]),
        credits_applied=Decimal(body["credits_applied"]),
        total=Decimal(body["total"]),
        adjustments=tuple(adjustments),
    )
