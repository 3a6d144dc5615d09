"""Amendments (SPEC §7): an issued period re-rated in full, minus what was already issued for it.

An issued invoice never changes. When usage of its period arrives late, the period is re-rated
with everything known of it (under the catalog, subscription, plan version, discount, commitment
and credit grants of that period), and the difference from the invoice and its earlier amendments
is issued as the next revision: a debit note when the total goes up, a credit note when it goes
down, nothing when every figure stays the same. Summing an invoice and its amendments field by
field gives the period as `meterline rate` rates it on the same events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import orjson

from meterline.credits import Drawdown
from meterline.invoice import Invoice, format_quantity, group_to_json
from meterline.money import Money, round_money
from meterline.periods import Period

FIGURES = ("subtotal", "discount", "commitment_true_up", "credits_applied", "total")
"""An invoice's figures after its lines, in SPEC §3's order."""

LineKey = tuple[str, bytes]
"""(meter, group as canonical JSON): one line of an invoice."""


def line_key(meter: str, group: Mapping[str, Any]) -> LineKey:
    return meter, orjson.dumps(group, option=orjson.OPT_SORT_KEYS)


def invoice_id(tenant: str, period: Period | str, subscription: str) -> str:
    return f"{tenant}|{period}|{subscription}"


@dataclass(frozen=True, slots=True)
class LineDelta:
    meter: str
    group: dict[str, Any]
    quantity_delta: Fraction
    amount_delta: Money

    def to_json(self) -> dict[str, Any]:
        return {
            "meter": self.meter,
            "group": group_to_json(self.group),
            "quantity_delta": format_quantity(self.quantity_delta),
            "amount_delta": str(self.amount_delta),
        }


@dataclass(frozen=True, slots=True)
class Amendment:
    tenant: str
    subscription: str
    adjusts_period: Period
    revision: int
    """1 for an invoice's first amendment, then 2, ..."""
    currency: str
    lines: tuple[LineDelta, ...]
    subtotal_delta: Money
    discount_delta: Money
    commitment_true_up_delta: Money
    credits_applied_delta: Money
    total_delta: Money
    credit_drawdowns: tuple[Drawdown, ...]
    """Per grant, what this amendment draws more (or gives back, negative)."""
    expired_grants: tuple[str, ...]
    """Grants that paid the period but expired since, and could have paid more of it (SPEC §7)."""
    catalog_digest: str
    number: str | None = None

    @property
    def invoice_id(self) -> str:
        return invoice_id(self.tenant, self.adjusts_period, self.subscription)

    @property
    def amendment_id(self) -> str:
        return f"{self.invoice_id}|{self.revision}"

    @property
    def kind(self) -> str:
        """A credit note when the total goes down; otherwise a debit note (of 0 when the change is
        absorbed, e.g. by a commitment's true-up)."""
        return "credit_note" if self.total_delta < self.total_delta.zero() else "debit_note"

    def to_json(self) -> dict[str, Any]:
        return {
            "amendment_id": self.amendment_id,
            "number": self.number,
            "tenant": self.tenant,
            "invoice_id": self.invoice_id,
            "subscription": self.subscription,
            "adjusts_period": str(self.adjusts_period),
            "revision": self.revision,
            "kind": self.kind,
            "currency": self.currency,
            "lines": [line.to_json() for line in self.lines],
            "subtotal_delta": str(self.subtotal_delta),
            "discount_delta": str(self.discount_delta),
            "commitment_true_up_delta": str(self.commitment_true_up_delta),
            "credits_applied_delta": str(self.credits_applied_delta),
            "credit_drawdowns": [drawdown.to_json() for drawdown in self.credit_drawdowns],
            "expired_grants": list(self.expired_grants),
            "total_delta": str(self.total_delta),
            "catalog_digest": self.catalog_digest,
        }


@dataclass
class Issued:
    """What was issued for one invoice so far: the invoice plus its amendments, summed (nothing
    yet: no figure, line or drawdown)."""

    lines: dict[LineKey, tuple[dict[str, Any], Fraction, Money]] = field(default_factory=dict)
    figures: dict[str, Money] = field(default_factory=dict)
    drawn: dict[str, Money] = field(default_factory=dict)
    revisions: int = 0

    def add_invoice(self, body: Mapping[str, Any], quantities: Iterable[Fraction]) -> None:
        """An invoice's JSON, with its lines' exact quantities (its text may be rounded for display)."""
        currency = body["currency"]
        for line, quantity in zip(body["lines"], quantities, strict=True):
            self._add_line(line["meter"], line["group"], quantity, Money.parse(line["amount"], currency))
        for name in FIGURES:
            self._add_figure(name, Money.parse(body[name], currency))
        add_drawdowns(self.drawn, body)

    def add_amendment(self, body: Mapping[str, Any], quantities: Iterable[Fraction]) -> None:
        currency = body["currency"]
        for line, quantity in zip(body["lines"], quantities, strict=True):
            self._add_line(
                line["meter"], line["group"], quantity, Money.parse(line["amount_delta"], currency)
            )
        for name in FIGURES:
            self._add_figure(name, Money.parse(body[f"{name}_delta"], currency))
        add_drawdowns(self.drawn, body)
        self.revisions = max(self.revisions, int(body["revision"]))

    def _add_line(self, meter: str, group: dict[str, Any], quantity: Fraction, amount: Money) -> None:
        key = line_key(meter, group)
        _, had_quantity, had_amount = self.lines.get(key, (group, Fraction(0), amount.zero()))
        self.lines[key] = (group, had_quantity + quantity, had_amount + amount)

    def _add_figure(self, name: str, amount: Money) -> None:
        self.figures[name] = self.figures.get(name, amount.zero()) + amount


def add_drawdowns(drawn: dict[str, Money], body: Mapping[str, Any]) -> None:
    """Add what an invoice's or amendment's JSON drew from each grant to ``drawn``."""
    currency = body["currency"]
    for drawdown in body["credit_drawdowns"]:
        amount = Money.parse(drawdown["amount"], currency)
        grant = drawdown["grant"]
        drawn[grant] = drawn.get(grant, amount.zero()) + amount


def amendment(rerated: Invoice, issued: Issued, expired_grants: Iterable[str] = ()) -> Amendment | None:
    """``rerated`` (the period re-rated in full) less what was ``issued`` for it; None when every
    figure and line is unchanged."""
    zero = round_money(0, rerated.currency)
    new_lines = {line_key(line.meter, line.group): line for line in rerated.lines}
    deltas = []
    for key in sorted(new_lines.keys() | issued.lines.keys()):
        new = new_lines.get(key)
        group, had_quantity, had_amount = issued.lines.get(key, (None, Fraction(0), zero))
        quantity = (new.quantity if new else Fraction(0)) - had_quantity
        amount = (new.amount if new else zero) - had_amount
        if quantity or amount:
            meter = key[0]
            deltas.append(LineDelta(meter, new.group if new else (group or {}), quantity, amount))
    figures = {name: getattr(rerated, name) - issued.figures.get(name, zero) for name in FIGURES}
    new_draws = {drawdown.grant: drawdown.amount for drawdown in rerated.credit_drawdowns}
    drawdowns = tuple(
        Drawdown(grant, delta)
        for grant in sorted(new_draws.keys() | issued.drawn.keys())
        if (delta := new_draws.get(grant, zero) - issued.drawn.get(grant, zero))
    )
    if not deltas and not any(figures.values()) and not drawdowns:
        return None
    unpaid = rerated.total > zero
    return Amendment(
        tenant=rerated.tenant,
        subscription=rerated.subscription,
        adjusts_period=rerated.period,
        revision=issued.revisions + 1,
        currency=rerated.currency,
        lines=tuple(deltas),
        subtotal_delta=figures["subtotal"],
        discount_delta=figures["discount"],
        commitment_true_up_delta=figures["commitment_true_up"],
        credits_applied_delta=figures["credits_applied"],
        total_delta=figures["total"],
        credit_drawdowns=drawdowns,
        expired_grants=tuple(sorted(expired_grants)) if unpaid else (),
        catalog_digest=rerated.catalog_digest,
    )
