"""The monthly cost of one billing cell: fixed dollars plus dollars per million events.

Every cost line is a price row times a quantity with two parts: units per month that do not depend
on the event volume, and units per million events. A stack's cost at any volume is then
`fixed + per_million × events / 1e6`, so the fixed cost, the variable cost and any what-if volume
come from the same lines. What cannot be priced (a kind without a rule, a region without a price
row, a missing figure) becomes an `Unpriced` entry with its reason, never a zero.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from infra.cost.inputs import CostInputs
from infra.cost.measured import Figure, Figures
from infra.cost.prices import Price, PriceBook

HOURS_PER_MONTH = Decimal(730)
"""The month of AWS's price pages and calculator (8760 h / 12)."""
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
BYTES_PER_GB = Decimal(2**30)
"""AWS bills data and storage GB as 2^30 bytes."""
MILLION = Decimal(1_000_000)
ZERO = Decimal(0)

CONVENTIONS = (
    ("month", "730 hours (8760 / 12)", "AWS price pages and pricing calculator"),
    ("GB", "2^30 bytes", "AWS bills data and storage in binary GB"),
    ("free tiers", "not applied (they are per account, not per cell)", "model convention"),
    ("tiered prices", "first tier only", "model convention: a cell stays in the first tier"),
)


@dataclass(frozen=True, slots=True)
class Line:
    service: str
    item: str
    price: Price
    fixed_units: Decimal
    """Units per month whatever the volume."""
    units_per_million: Decimal
    """Units per million events."""
    note: str = ""

    @property
    def fixed_usd(self) -> Decimal:
        return self.fixed_units * self.price.usd_per_unit

    @property
    def usd_per_million(self) -> Decimal:
        return self.units_per_million * self.price.usd_per_unit


@dataclass(frozen=True, slots=True)
class Unpriced:
    resource: str
    reason: str


def events_per_month(events_per_second: Decimal) -> Decimal:
    return events_per_second * SECONDS_PER_MONTH


@dataclass(frozen=True)
class StackCost:
    inputs: CostInputs
    events_per_second: Decimal
    what_if: bool
    lines: tuple[Line, ...]
    unpriced: tuple[Unpriced, ...]
    figures_used: tuple[Figure, ...]

    @property
    def fixed_usd_month(self) -> Decimal:
        return sum((line.fixed_usd for line in self.lines), ZERO)

    @property
    def usd_per_million_events(self) -> Decimal:
        return sum((line.usd_per_million for line in self.lines), ZERO)

    @property
    def events_per_month(self) -> Decimal:
        return events_per_month(self.events_per_second)

    def total_usd_month(self, events_per_second: Decimal | None = None) -> Decimal:
        eps = self.events_per_second if events_per_second is None else events_per_second
        return self.fixed_usd_month + self.usd_per_million_events * events_per_month(eps) / MILLION

    @property
    def complete(self) -> bool:
        return not self.unpriced

    @property
    def over_budget(self) -> bool:
        budget = self.inputs.budget_usd_month
        return budget is not None and self.total_usd_month() > budget

    def by_service(self) -> list[tuple[str, Decimal, Decimal, Decimal]]:
        """(service, fixed USD/month, USD per million events, USD/month at the volume), largest first."""
        services: dict[str, tuple[Decimal, Decimal]] = {}
        for line in self.lines:
            fixed, variable = services.get(line.service, (ZERO, ZERO))
            services[line.service] = (fixed + line.fixed_usd, variable + line.usd_per_million)
        volume = self.events_per_month / MILLION
        rows = [(name, f, v, f + v * volume) for name, (f, v) in services.items()]
        return sorted(rows, key=lambda row: (-row[3], row[0]))


Rule = Callable[[Mapping[str, Any], "Pricing"], list[Line | Unpriced]]
RULES: dict[tuple[str, str], Rule] = {}


def rule(cloud: str, kind: str) -> Callable[[Rule], Rule]:
    def register(function: Rule) -> Rule:
        RULES[(cloud, kind)] = function
        return function

    return register


@dataclass
class Pricing:
    """What a rule needs: the stack, its price rows and figures; it remembers the figures it used."""

    inputs: CostInputs
    prices: PriceBook
    figures: Figures
    used: dict[str, Figure] = field(default_factory=dict)

    def figure(self, *names: str) -> Figure | None:
        for name in names:
            found = self.figures.get(name)
            if found is not None:
                self.used[name] = found
                return found
        return None

    def line(
        self,
        service: str,
        sku: str,
        item: str,
        fixed: Decimal = ZERO,
        per_million: Decimal = ZERO,
        note: str = "",
    ) -> Line | Unpriced:
        cloud, region = self.inputs.cloud, self.inputs.region
        price = self.prices.find(cloud, service, sku, region)
        if price is None:
            return Unpriced(item, f"no price row for {cloud}/{service}/{sku} in region {region}")
        return Line(service, item, price, fixed, per_million, note)

    def flow(
        self, item: str, names: tuple[str, ...], invocations: Decimal | None = None
    ) -> tuple[Decimal, Decimal] | Unpriced:
        """(units per month, units per million events) of a flow figure, the first of `names` found."""
        found = self.figure(*names)
        if found is None:
            return Unpriced(item, f"no measured or estimated figure {names[0]!r}")
        tenants = self.inputs.usage.tenants
        match found.per:
            case "event":
                return ZERO, found.value * MILLION
            case "million_events":
                return ZERO, found.value
            case "month":
                return found.value, ZERO
            case "tenant_month":
                return found.value * tenants, ZERO
            case "invocation" if invocations is not None:
                return found.value * invocations, ZERO
        return Unpriced(item, f"figure {found.name!r} is counted per {found.per}, which this line cannot use")

    def constant(self, item: str, name: str) -> Decimal | Unpriced:
        found = self.figure(name)
        if found is None:
            return Unpriced(item, f"no measured or estimated figure {name!r}")
        return found.value

    def flow_line(
        self,
        service: str,
        sku: str,
        item: str,
        names: tuple[str, ...],
        scale: Decimal = Decimal(1),
        invocations: Decimal | None = None,
        note: str = "",
    ) -> Line | Unpriced:
        quantity = self.flow(item, names, invocations)
        if isinstance(quantity, Unpriced):
            return quantity
        fixed, per_million = quantity
        return self.line(service, sku, item, fixed * scale, per_million * scale, note)


def estimate(
    inputs: CostInputs,
    prices: PriceBook,
    figures: Figures,
    events_per_second: Decimal | None = None,
) -> StackCost:
    """The stack's cost lines; `events_per_second` overrides the configured volume (what-if)."""
    # The rules register themselves on import; the import is here to keep the registry explicit.
    from infra.cost import rules_aws, rules_azure, rules_gcp  # noqa: F401

    pricing = Pricing(inputs, prices, figures)
    lines: list[Line] = []
    unpriced: list[Unpriced] = []
    if inputs.region not in prices.regions(inputs.cloud):
        unpriced.append(Unpriced(f"region {inputs.region}", f"no {inputs.cloud} price rows for this region"))
    for resource in inputs.resources:
        kind = str(resource["kind"])
        found = RULES.get((inputs.cloud, kind))
        if found is None:
            unpriced.append(Unpriced(describe(resource), f"no cost rule for {inputs.cloud} kind {kind!r}"))
            continue
        try:
            entries = found(resource, pricing)
        except (ArithmeticError, ValueError, TypeError) as error:
            entries = [Unpriced(describe(resource), f"malformed resource ({error})")]
        for entry in entries:
            if isinstance(entry, Line):
                lines.append(entry)
            else:
                unpriced.append(entry)
    volume = inputs.usage.events_per_second if events_per_second is None else events_per_second
    return StackCost(
        inputs=inputs,
        events_per_second=volume,
        what_if=events_per_second is not None,
        lines=tuple(lines),
        unpriced=tuple(_dedupe(unpriced)),
        figures_used=tuple(pricing.used.values()),
    )


def describe(resource: Mapping[str, Any]) -> str:
    label = resource.get("name") or resource.get("topic") or resource.get("job") or resource.get("type")
    return f"{resource['kind']} {label}" if label else str(resource["kind"])


def counted(resource: Mapping[str, Any]) -> Decimal | Unpriced:
    """How many of the resource there are (`count`, 1 when absent); a count that is no number is unpriced."""
    count = resource.get("count", 1)
    found = Decimal(-1)
    if not isinstance(count, bool) and isinstance(count, int | str | Decimal):
        with suppress(ArithmeticError):
            found = Decimal(count)
    if found < 0:
        return Unpriced(describe(resource), f"count {resource.get('count')!r} is not a whole number")
    return found


def _dedupe(entries: list[Unpriced]) -> list[Unpriced]:
    return list(dict.fromkeys(entries))
