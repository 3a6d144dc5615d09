"""The catalog: meters, versioned plans, customers and their subscriptions and credit grants, and
the billing settings (SPEC §2, §5, §6), loaded from YAML and validated.

Every number is read from the YAML scalar's text as an exact ``Decimal``; a bad catalog raises
``CatalogError`` naming the file, the line, the entry and the field.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from meterline.markets import CLOUD, DIMENSIONS, REGION, Where
from meterline.money import UnknownCurrencyError, minor_units
from meterline.periods import Period, PeriodError


class Aggregation(StrEnum):
    SUM = "sum"
    COUNT = "count"
    MAX = "max"
    MIN = "min"
    UNIQUE_COUNT = "unique_count"
    LATEST = "latest"
    TIME_WEIGHTED = "time_weighted"


class PricingModel(StrEnum):
    PER_UNIT = "per_unit"
    PACKAGE = "package"
    GRADUATED = "graduated"
    VOLUME = "volume"
    FLAT = "flat"


class CatalogError(ValueError):
    """A catalog that cannot be used, with where and why."""


@dataclass(frozen=True, slots=True)
class Meter:
    key: str
    event_type: str
    aggregation: Aggregation
    value: tuple[str, ...] | None
    """Path into the event's data (``a.b`` is ``("a", "b")``); None for ``count``."""
    divide_by: Decimal | None = None
    group_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class Charge:
    model: PricingModel
    meter: str | None = None
    """The metered quantity it prices; None for a flat charge."""
    key: str | None = None
    """The name of a flat charge."""
    unit_price: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    package_size: Decimal | None = None
    package_price: Decimal | None = None
    amount: Decimal | None = None
    where: Where | None = None
    """The markets it prices (SPEC §8); None: every cell's."""

    @property
    def line_key(self) -> str:
        """What an invoice line calls it: the meter, or the flat charge's key."""
        name = self.meter if self.model is not PricingModel.FLAT else self.key
        assert name is not None
        return name


@dataclass(frozen=True, slots=True)
class Plan:
    """One version of a plan."""

    key: str
    version: int
    effective_from: date
    currency: str
    charges: tuple[Charge, ...]
    discount_percent: Decimal | None = None
    minimum_commit: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    """A plan from ``start`` (inclusive) to ``end`` (exclusive; None: open-ended), UTC midnights."""

    plan: str
    start: date
    end: date | None = None

    @property
    def key(self) -> str:
        """Stable within a tenant (subscriptions do not overlap): the plan and the day it starts."""
        return f"{self.plan}@{self.start.isoformat()}"


@dataclass(frozen=True, slots=True)
class CreditGrant:
    """Prepaid credit, a balance that invoices draw from while it is eligible (SPEC §6)."""

    id: str
    amount: Decimal
    effective_from: date
    expires: date | None = None
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Customer:
    tenant: str
    subscriptions: tuple[Subscription, ...]
    """Non-overlapping, earliest first; v1's ``plan: X`` is one from X's first version, open-ended."""
    charges: tuple[Charge, ...] = ()
    """Contract overrides: each replaces the plan's charge with the same line key, or adds one."""
    credits: Decimal | None = None
    """v1 credits: a grant of this much for each period, expiring at its end."""
    spend_alerts: tuple[Decimal, ...] = ()
    """Running-spend thresholds for the open period; each crossing is announced once."""
    credit_grants: tuple[CreditGrant, ...] = ()


class NumberingScope(StrEnum):
    ISSUER = "issuer"
    CUSTOMER = "customer"


@dataclass(frozen=True, slots=True)
class Numbering:
    prefix: str = ""
    per: NumberingScope = NumberingScope.ISSUER


@dataclass(frozen=True, slots=True)
class Billing:
    """The deployment's billing settings (SPEC §5); every field has a default."""

    first_period: Period | None = None
    """None: the period of the earliest ``effective_from`` of any plan (``Catalog.first_period``)."""
    grace: timedelta = timedelta(hours=1)
    amend_periods: int = 2
    numbering: Numbering = field(default_factory=Numbering)
    cell_wait: timedelta = timedelta(hours=6)


@dataclass(frozen=True)
class Catalog:
    meters: Mapping[str, Meter]
    plans: Mapping[str, tuple[Plan, ...]]
    """Every version of each plan, oldest ``effective_from`` first."""
    customers: Mapping[str, Customer]
    billing: Billing = field(default_factory=Billing)
    digest: str = ""
    """SHA-256 (hex) of the catalog file's bytes: what ``catalog_digest`` records (SPEC §7)."""
    meters_by_type: Mapping[str, tuple[Meter, ...]] = field(init=False)

    def __post_init__(self) -> None:
        by_type: dict[str, list[Meter]] = {}
        for meter in self.meters.values():
            by_type.setdefault(meter.event_type, []).append(meter)
        object.__setattr__(self, "meters_by_type", {t: tuple(m) for t, m in by_type.items()})

    @property
    def first_period(self) -> Period:
        """The first period this deployment invoices: set, or that of the earliest version of any plan."""
        if self.billing.first_period is not None:
            return self.billing.first_period
        # no plan at all: nothing is ever invoiced, and no usage is out of billing's reach
        earliest = min(
            (plan.effective_from for versions in self.plans.values() for plan in versions), default=date.min
        )
        return Period(earliest.year, earliest.month)

    def plan_in_effect(self, plan_key: str, period: Period) -> Plan | None:
        """The version with the greatest ``effective_from`` not after the period's start."""
        return self.version_on(plan_key, period.start.date())

    def version_on(self, plan_key: str, day: date) -> Plan | None:
        """The version with the greatest ``effective_from`` not after ``day``."""
        in_effect = [plan for plan in self.plans[plan_key] if plan.effective_from <= day]
        return in_effect[-1] if in_effect else None

    def charges_for(self, customer: Customer, plan: Plan) -> tuple[Charge, ...]:
        """The plan's charges with the contract's: a meter (or flat key) the contract prices is
        priced by the contract's charges alone, in their order, where the plan's first one stood."""
        overrides: dict[str, list[Charge]] = {}
        for charge in customer.charges:
            overrides.setdefault(charge.line_key, []).append(charge)
        charges: list[Charge] = []
        replaced: set[str] = set()
        for charge in plan.charges:
            key = charge.line_key
            if key not in overrides:
                charges.append(charge)
            elif key not in replaced:
                charges += overrides[key]
                replaced.add(key)
        for key, contract in overrides.items():
            if key not in replaced:
                charges += contract
        return tuple(charges)


def load_catalog(path: str | Path) -> Catalog:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CatalogError(f"{path}: cannot read the catalog ({error.strerror})") from None
    return parse_catalog_bytes(data, str(path))


def sample_catalog() -> Catalog:
    """The catalog shipped with the package (``meterline/samples/catalog.yaml``)."""
    sample = resources.files("meterline").joinpath("samples", "catalog.yaml")
    return parse_catalog_bytes(sample.read_bytes(), "meterline/samples/catalog.yaml")


def parse_catalog_bytes(data: bytes, source: str = "<catalog>") -> Catalog:
    """A catalog file's bytes: its digest is theirs, whatever their line endings."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CatalogError(f"{source}: the catalog is not UTF-8 text") from None
    return parse_catalog(text, source, digest=hashlib.sha256(data).hexdigest())


def parse_catalog(text: str, source: str = "<catalog>", *, digest: str | None = None) -> Catalog:
    """A catalog from its text; its digest is that of the text in UTF-8 unless given."""
    try:
        document = yaml.load(text, Loader=_CatalogLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
        if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
            problem = f"{problem}, {context} from line {context_mark.line + 1}"
        raise CatalogError(f"{source}{where}: not valid YAML ({problem})") from None
    except RecursionError:
        raise CatalogError(f"{source}: not valid YAML (nested too deeply)") from None
    if document is None:
        raise CatalogError(f"{source}: catalog: the catalog is empty (expected meters, plans, customers)")
    return _CatalogReader(source).read(document, digest or hashlib.sha256(text.encode("utf-8")).hexdigest())


# --- YAML loading that keeps exact numbers and line numbers --------------------------------------


class _Node(dict[str, Any]):
    """A mapping that remembers the line of each of its keys, and any key given twice."""

    line: int
    key_lines: dict[str, int]
    repeated: str | None = None


class _Seq(list[Any]):
    """A sequence that remembers the line of each item."""

    line: int
    item_lines: list[int]


class _CatalogLoader(yaml.SafeLoader):
    pass


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | str:
    """A YAML number as the exact decimal its text says; YAML 1.1 oddities (0x1A, 1:30, .inf) stay
    text, so the field that holds one reports it with its entry."""
    text = str(loader.construct_scalar(node))
    try:
        return Decimal(text.replace("_", ""))
    except InvalidOperation:
        return text


def _construct_date(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> date | str:
    """A date stays a date; a timestamp or an impossible date (2026-13-01) stays text for the reader."""
    text = str(loader.construct_scalar(node))
    try:
        return date.fromisoformat(text)
    except ValueError:
        return text


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _Node:
    mapping = _Node()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = str(loader.construct_object(key_node, deep=True))
        if key in mapping and mapping.repeated is None:
            mapping.repeated = key
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> _Seq:
    sequence = _Seq(loader.construct_object(item, deep=True) for item in node.value)
    sequence.line = node.start_mark.line + 1
    sequence.item_lines = [item.start_mark.line + 1 for item in node.value]
    return sequence


_CatalogLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_CatalogLoader.add_constructor("tag:yaml.org,2002:int", _construct_decimal)
_CatalogLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_CatalogLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)
_CatalogLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_date)

_MAX_DIGITS = 30
"""Digits allowed either side of the point in a catalog number: enough for any price or divisor,
and no more, so that exact arithmetic on it stays cheap."""


# --- validation ---------------------------------------------------------------------------------


class _CatalogReader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(
        self, node: Any, entry: str, message: str, field_name: str | None = None, *, line: int | None = None
    ) -> CatalogError:
        line = line or getattr(node, "line", None)
        if field_name and isinstance(node, _Node):
            line = node.key_lines.get(field_name, line)
        where = f"{self.source}:{line}" if line else self.source
        what = f"{entry}.{field_name}" if field_name else entry
        return CatalogError(f"{where}: {what}: {message}")

    # fields ------------------------------------------------------------------------------------

    def mapping(self, node: Any, entry: str, *, line: int | None = None) -> _Node:
        if not isinstance(node, _Node):
            raise self.fail(node, entry, f"must be a mapping, not {_kind(node)}", line=line)
        if node.repeated is not None:
            raise self.fail(node, entry, "is given twice", node.repeated)
        return node

    def items(self, node: _Node, entry: str, name: str) -> Iterable[tuple[int, int | None, Any]]:
        """(index, line, item) for each item of a list field."""
        sequence = self.sequence(node, entry, name)
        lines = getattr(sequence, "item_lines", [None] * len(sequence))
        return zip(range(len(sequence)), lines, sequence, strict=True)

    def known_fields(self, node: _Node, entry: str, allowed: Iterable[str]) -> None:
        unknown = sorted(set(node) - set(allowed))
        if unknown:
            raise self.fail(
                node, entry, f"unknown field (expected one of: {', '.join(sorted(allowed))})", unknown[0]
            )

    def text(self, node: _Node, entry: str, name: str, *, required: bool = True) -> str | None:
        value = node.get(name)
        if value is None:
            if required:
                raise self.fail(node, entry, "is required", name)
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, entry, "must be a non-empty string", name)
        return value

    def decimal(
        self, node: _Node, entry: str, name: str, *, required: bool = False, positive: bool = False
    ) -> Decimal | None:
        value = node.get(name)
        if value is None:
            if required:
                raise self.fail(node, entry, "is required", name)
            return None
        if isinstance(value, bool):
            raise self.fail(node, entry, "must be a decimal number, not a boolean", name)
        if isinstance(value, str):
            try:
                value = Decimal(value.strip())
            except InvalidOperation:
                raise self.fail(node, entry, f"{value!r} is not a decimal number", name) from None
        if not isinstance(value, Decimal) or not value.is_finite():
            raise self.fail(node, entry, f"must be a finite decimal number, not {_kind(value)}", name)
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)
        if value and (value.adjusted() >= _MAX_DIGITS or -exponent > _MAX_DIGITS):
            raise self.fail(
                node,
                entry,
                f"{value} is out of range (at most {_MAX_DIGITS} digits each side of the point)",
                name,
            )
        if value < 0 or (positive and value == 0):
            raise self.fail(
                node, entry, "must be greater than zero" if positive else "must not be negative", name
            )
        return value

    def sequence(self, node: _Node, entry: str, name: str) -> Sequence[Any]:
        value = node.get(name)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(node, entry, f"must be a list, not {_kind(value)}", name)
        return value

    # catalog -----------------------------------------------------------------------------------

    def read(self, document: Any, digest: str) -> Catalog:
        root = self.mapping(document, "catalog")
        self.known_fields(root, "catalog", ("meters", "plans", "customers", "billing"))
        meters = self.read_meters(root)
        plans = self.read_plans(root, meters)
        customers = self.read_customers(root, meters, plans)
        billing = self.read_billing(root)
        return Catalog(meters=meters, plans=plans, customers=customers, billing=billing, digest=digest)

    def read_meters(self, root: _Node) -> dict[str, Meter]:
        meters: dict[str, Meter] = {}
        if not self.sequence(root, "catalog", "meters"):
            raise self.fail(root, "catalog", "must list at least one meter", "meters")
        for index, line, raw in self.items(root, "catalog", "meters"):
            entry = f"meters[{index}]"
            node = self.mapping(raw, entry, line=line)
            self.known_fields(
                node, entry, ("key", "event_type", "aggregation", "value", "divide_by", "group_by")
            )
            key = self.text(node, entry, "key")
            assert key is not None
            entry = f"meters[{key}]"
            if key in meters:
                raise self.fail(node, entry, "is defined twice", "key")
            event_type = self.text(node, entry, "event_type")
            assert event_type is not None
            aggregation_name = self.text(node, entry, "aggregation")
            try:
                aggregation = Aggregation(str(aggregation_name))
            except ValueError:
                allowed = " | ".join(a.value for a in Aggregation)
                raise self.fail(
                    node,
                    entry,
                    f"unknown aggregation {aggregation_name!r} (expected {allowed})",
                    "aggregation",
                ) from None
            value = self.text(node, entry, "value", required=aggregation is not Aggregation.COUNT)
            path = tuple(value.split(".")) if value else None
            if path and not all(path):
                raise self.fail(node, entry, f"{value!r} is not a dotted path of data keys", "value")
            divide_by = self.decimal(node, entry, "divide_by", positive=True)
            group_by = self.sequence(node, entry, "group_by")
            if not all(isinstance(key_name, str) and key_name for key_name in group_by):
                raise self.fail(node, entry, "must list data keys as strings", "group_by")
            if len(set(group_by)) != len(group_by):
                raise self.fail(node, entry, "names a key twice", "group_by")
            for name in group_by:
                if name.startswith("$") and name not in DIMENSIONS:
                    raise self.fail(
                        node,
                        entry,
                        f"{name!r} is no market dimension (a cell fills in {' and '.join(DIMENSIONS)})",
                        "group_by",
                    )
            meters[key] = Meter(key, event_type, aggregation, path, divide_by, tuple(group_by))
        return meters

    def read_plans(self, root: _Node, meters: Mapping[str, Meter]) -> dict[str, tuple[Plan, ...]]:
        versions: dict[str, list[Plan]] = {}
        for index, line, raw in self.items(root, "catalog", "plans"):
            entry = f"plans[{index}]"
            node = self.mapping(raw, entry, line=line)
            self.known_fields(
                node,
                entry,
                (
                    "key",
                    "version",
                    "effective_from",
                    "currency",
                    "charges",
                    "discount_percent",
                    "minimum_commit",
                ),
            )
            key = self.text(node, entry, "key")
            assert key is not None
            version = node.get("version", Decimal(1))
            if not isinstance(version, Decimal) or version != version.to_integral_value() or version < 1:
                raise self.fail(node, f"plans[{key}]", "must be a whole number from 1", "version")
            entry = f"plans[{key} v{int(version)}]"
            effective_from = self.read_date(node, entry, "effective_from")
            currency = self.text(node, entry, "currency")
            assert currency is not None
            try:
                minor_units(currency)
            except UnknownCurrencyError:
                raise self.fail(
                    node, entry, f"{currency!r} is not an ISO 4217 currency code", "currency"
                ) from None
            charges = self.read_charges(node, entry, meters, required=True)
            discount = self.decimal(node, entry, "discount_percent")
            if discount is not None and discount > 100:
                raise self.fail(node, entry, "must be at most 100", "discount_percent")
            plan = Plan(
                key,
                int(version),
                effective_from,
                currency,
                charges,
                discount,
                self.decimal(node, entry, "minimum_commit"),
            )
            for other in versions.get(key, []):
                if other.version == plan.version:
                    raise self.fail(node, entry, "is defined twice", "version")
                if other.effective_from == plan.effective_from:
                    raise self.fail(
                        node, entry, f"is the same as version {other.version}'s", "effective_from"
                    )
                if other.currency != plan.currency:
                    raise self.fail(
                        node, entry, f"differs from version {other.version}'s ({other.currency})", "currency"
                    )
            versions.setdefault(key, []).append(plan)
        return {key: tuple(sorted(plans, key=lambda p: p.effective_from)) for key, plans in versions.items()}

    def read_date(self, node: _Node, entry: str, name: str) -> date:
        value = node.get(name)
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        if value is None:
            raise self.fail(node, entry, "is required (YYYY-MM-DD)", name)
        raise self.fail(node, entry, f"{value!r} is not a date (YYYY-MM-DD)", name)

    def read_charges(
        self, node: _Node, entry: str, meters: Mapping[str, Meter], *, required: bool
    ) -> tuple[Charge, ...]:
        charges: list[Charge] = []
        if required and not self.sequence(node, entry, "charges"):
            raise self.fail(node, entry, "must list at least one charge", "charges")
        everywhere: set[str] = set()
        """Line keys an earlier charge prices in every market: a later charge of theirs is never used."""
        for index, line, raw in self.items(node, entry, "charges"):
            charge_entry = f"{entry}.charges[{index}]"
            charge = self.read_charge(self.mapping(raw, charge_entry, line=line), charge_entry, meters)
            if charge.line_key in everywhere:
                field_name = "key" if charge.model is PricingModel.FLAT else "meter"
                problem = f"prices {charge.line_key!r} a second time"
                if charge.model is not PricingModel.FLAT:
                    problem += " (an earlier charge of it without where prices every market)"
                raise self.fail(raw, charge_entry, problem, field_name)
            if charge.where is None:
                everywhere.add(charge.line_key)
            charges.append(charge)
        return tuple(charges)

    def read_where(self, node: _Node, entry: str, meter: Meter) -> Where | None:
        """``where: {cloud: X | [X, ...], region: Y | [Y, ...]}``; its meter must group by each
        dimension it names, so that every line of the meter has one price."""
        if node.get("where") is None:
            return None
        where_entry = f"{entry}.where"
        where = self.mapping(node["where"], where_entry, line=node.key_lines.get("where"))
        self.known_fields(where, where_entry, ("cloud", "region"))
        if not where:
            raise self.fail(node, entry, "must name a cloud, a region or both", "where")
        found: dict[str, frozenset[str]] = {}
        for name, dimension in (("cloud", CLOUD), ("region", REGION)):
            if name not in where:
                continue
            raw = where[name]
            values = list(raw) if isinstance(raw, list) else [raw]
            if not values or not all(isinstance(value, str) and value.strip() for value in values):
                raise self.fail(where, where_entry, "must be a name or a list of names", name)
            if dimension not in meter.group_by:
                raise self.fail(
                    where,
                    where_entry,
                    f"prices by {name}, so meter {meter.key!r} must group by {dimension}"
                    " (each line then has one price)",
                    name,
                )
            found[name] = frozenset(values)
        return Where(found.get("cloud"), found.get("region"))

    def read_charge(self, node: _Node, entry: str, meters: Mapping[str, Meter]) -> Charge:
        model_name = self.text(node, entry, "model")
        try:
            model = PricingModel(str(model_name))
        except ValueError:
            allowed = " | ".join(m.value for m in PricingModel)
            raise self.fail(
                node, entry, f"unknown model {model_name!r} (expected {allowed})", "model"
            ) from None
        if model is PricingModel.FLAT:
            if "where" in node:
                raise self.fail(
                    node, entry, "a flat charge is not priced by market (no usage to match)", "where"
                )
            self.known_fields(node, entry, ("key", "model", "amount"))
            key = self.text(node, entry, "key")
            if key in meters:
                raise self.fail(node, entry, f"{key!r} is a meter's key; a flat charge needs its own", "key")
            return Charge(model, key=key, amount=self.decimal(node, entry, "amount", required=True))
        meter = self.text(node, entry, "meter")
        assert meter is not None
        if meter not in meters:
            raise self.fail(node, entry, f"unknown meter {meter!r}", "meter")
        entry = f"{entry}[{meter}]"
        where = self.read_where(node, entry, meters[meter])
        if model is PricingModel.PER_UNIT:
            self.known_fields(node, entry, ("meter", "model", "unit_price", "where"))
            return Charge(
                model,
                meter=meter,
                unit_price=self.decimal(node, entry, "unit_price", required=True),
                where=where,
            )
        if model is PricingModel.PACKAGE:
            self.known_fields(node, entry, ("meter", "model", "package_size", "package_price", "where"))
            return Charge(
                model,
                meter=meter,
                package_size=self.decimal(node, entry, "package_size", required=True, positive=True),
                package_price=self.decimal(node, entry, "package_price", required=True),
                where=where,
            )
        self.known_fields(node, entry, ("meter", "model", "tiers", "where"))
        return Charge(model, meter=meter, tiers=self.read_tiers(node, entry), where=where)

    def read_tiers(self, node: _Node, entry: str) -> tuple[Tier, ...]:
        raw_tiers = self.sequence(node, entry, "tiers")
        if not raw_tiers:
            raise self.fail(node, entry, "must list at least one tier", "tiers")
        tiers: list[Tier] = []
        for index, line, raw in self.items(node, entry, "tiers"):
            tier_entry = f"{entry}.tiers[{index}]"
            tier = self.mapping(raw, tier_entry, line=line)
            self.known_fields(tier, tier_entry, ("up_to", "unit_price", "flat_fee"))
            if "up_to" not in tier:
                raise self.fail(tier, tier_entry, "is required (null for the last, unbounded tier)", "up_to")
            up_to = self.decimal(tier, tier_entry, "up_to", positive=True)
            if tiers and tiers[-1].up_to is not None and up_to is not None and up_to <= tiers[-1].up_to:
                raise self.fail(
                    tier,
                    tier_entry,
                    f"must be above the previous tier's ({tiers[-1].up_to}): tiers out of order",
                    "up_to",
                )
            if tiers and tiers[-1].up_to is None:
                raise self.fail(tier, tier_entry, "follows the unbounded tier", "up_to")
            unit_price = self.decimal(tier, tier_entry, "unit_price", required=True)
            assert unit_price is not None
            tiers.append(Tier(up_to, unit_price, self.decimal(tier, tier_entry, "flat_fee") or Decimal(0)))
        if tiers[-1].up_to is not None:
            raise self.fail(
                raw_tiers[-1],
                f"{entry}.tiers[{len(tiers) - 1}]",
                "the last tier must be unbounded (up_to: null)",
                "up_to",
            )
        return tuple(tiers)

    def read_customers(
        self, root: _Node, meters: Mapping[str, Meter], plans: Mapping[str, tuple[Plan, ...]]
    ) -> dict[str, Customer]:
        customers: dict[str, Customer] = {}
        for index, line, raw in self.items(root, "catalog", "customers"):
            entry = f"customers[{index}]"
            node = self.mapping(raw, entry, line=line)
            self.known_fields(
                node,
                entry,
                ("tenant", "plan", "subscriptions", "charges", "credits", "credit_grants", "spend_alerts"),
            )
            tenant = self.text(node, entry, "tenant")
            assert tenant is not None
            entry = f"customers[{tenant}]"
            if tenant in customers:
                raise self.fail(node, entry, "is defined twice", "tenant")
            subscriptions = self.read_subscriptions(node, entry, plans)
            alerts = []
            for position, line, threshold in self.items(node, entry, "spend_alerts"):
                holder = _Node({f"spend_alerts[{position}]": threshold})
                holder.line, holder.key_lines = line or node.key_lines.get("spend_alerts", node.line), {}
                value = self.decimal(holder, entry, f"spend_alerts[{position}]", required=True, positive=True)
                assert value is not None
                alerts.append(value)
            credits = self.decimal(node, entry, "credits")
            grants = self.read_grants(node, entry)
            if credits is not None or grants:
                self.one_currency(
                    node, entry, subscriptions, plans, "credits" if credits is not None else "credit_grants"
                )
            customers[tenant] = Customer(
                tenant,
                subscriptions,
                self.read_charges(node, entry, meters, required=False),
                credits,
                tuple(sorted(alerts)),
                grants,
            )
        return customers

    # subscriptions, credit grants and billing (SPEC v2) ------------------------------------------

    def read_subscriptions(
        self, node: _Node, entry: str, plans: Mapping[str, tuple[Plan, ...]]
    ) -> tuple[Subscription, ...]:
        """``plan: X`` (v1) or ``subscriptions``: one or the other, non-overlapping."""
        if "plan" in node and "subscriptions" in node:
            raise self.fail(
                node, entry, "gives both plan and subscriptions (one or the other)", "subscriptions"
            )
        if "subscriptions" not in node:
            if "plan" not in node:
                raise self.fail(node, entry, "is required (or subscriptions)", "plan")
            plan = self.text(node, entry, "plan")
            assert plan is not None
            if plan not in plans:
                raise self.fail(node, entry, f"unknown plan {plan!r}", "plan")
            return (Subscription(plan, plans[plan][0].effective_from),)
        if not self.sequence(node, entry, "subscriptions"):
            raise self.fail(node, entry, "must list at least one subscription", "subscriptions")
        subscriptions: list[tuple[Subscription, _Node, str]] = []
        for index, line, raw in self.items(node, entry, "subscriptions"):
            item_entry = f"{entry}.subscriptions[{index}]"
            item = self.mapping(raw, item_entry, line=line)
            self.known_fields(item, item_entry, ("plan", "from", "to"))
            plan = self.text(item, item_entry, "plan")
            assert plan is not None
            if plan not in plans:
                raise self.fail(item, item_entry, f"unknown plan {plan!r}", "plan")
            start = self.read_date(item, item_entry, "from")
            end = self.read_date(item, item_entry, "to") if item.get("to") is not None else None
            if end is not None and end <= start:
                raise self.fail(item, item_entry, f"{end} is not after from ({start})", "to")
            first = plans[plan][0].effective_from
            if start < first:
                raise self.fail(
                    item, item_entry, f"{start} is before plan {plan!r} has a version (from {first})", "from"
                )
            subscriptions.append((Subscription(plan, start, end), item, item_entry))
        subscriptions.sort(key=lambda found: found[0].start)
        for (earlier, _, earlier_entry), (later, item, item_entry) in pairwise(subscriptions):
            if earlier.end is None or earlier.end > later.start:
                raise self.fail(
                    item, item_entry, f"{later.start} overlaps {earlier_entry} (from {earlier.start})", "from"
                )
        return tuple(subscription for subscription, _, _ in subscriptions)

    def one_currency(
        self,
        node: _Node,
        entry: str,
        subscriptions: tuple[Subscription, ...],
        plans: Mapping[str, tuple[Plan, ...]],
        field_name: str,
    ) -> None:
        """Credits are money in the customer's currency: its subscriptions must agree on one."""
        currencies = sorted({plans[subscription.plan][0].currency for subscription in subscriptions})
        if len(currencies) > 1:
            raise self.fail(
                node,
                entry,
                f"needs the customer's subscriptions in one currency (they use {', '.join(currencies)})",
                field_name,
            )

    def read_grants(self, node: _Node, entry: str) -> tuple[CreditGrant, ...]:
        grants: list[CreditGrant] = []
        for index, line, raw in self.items(node, entry, "credit_grants"):
            item_entry = f"{entry}.credit_grants[{index}]"
            item = self.mapping(raw, item_entry, line=line)
            self.known_fields(item, item_entry, ("id", "amount", "effective_from", "expires", "priority"))
            grant_id = self.text(item, item_entry, "id")
            assert grant_id is not None
            item_entry = f"{entry}.credit_grants[{grant_id}]"
            if any(grant.id == grant_id for grant in grants):
                raise self.fail(item, item_entry, "is defined twice", "id")
            if grant_id.startswith(V1_CREDITS_PREFIX):
                raise self.fail(
                    item, item_entry, f"{V1_CREDITS_PREFIX!r} names v1 credits' grants; choose another", "id"
                )
            amount = self.decimal(item, item_entry, "amount", required=True)
            assert amount is not None
            effective_from = self.read_date(item, item_entry, "effective_from")
            expires = self.read_date(item, item_entry, "expires") if item.get("expires") is not None else None
            if expires is not None and expires <= effective_from:
                raise self.fail(
                    item, item_entry, f"{expires} is not after effective_from ({effective_from})", "expires"
                )
            priority = item.get("priority", Decimal(0))
            if not isinstance(priority, Decimal) or priority != priority.to_integral_value():
                raise self.fail(item, item_entry, "must be a whole number (lower draws first)", "priority")
            grants.append(CreditGrant(grant_id, amount, effective_from, expires, int(priority)))
        return tuple(grants)

    def read_billing(self, root: _Node) -> Billing:
        if root.get("billing") is None:
            return Billing()
        entry = "billing"
        node = self.mapping(root["billing"], entry, line=root.key_lines.get("billing"))
        self.known_fields(node, entry, ("first_period", "grace", "amend_periods", "numbering", "cell_wait"))
        defaults = Billing()
        first_period = None
        if node.get("first_period") is not None:
            text = node["first_period"]
            try:
                first_period = Period.parse(text if isinstance(text, str) else "")
            except PeriodError:
                raise self.fail(
                    node, entry, f"{text!r} is not a month written YYYY-MM", "first_period"
                ) from None
        amend = node.get("amend_periods", Decimal(defaults.amend_periods))
        if not isinstance(amend, Decimal) or amend != amend.to_integral_value() or amend < 0:
            raise self.fail(node, entry, "must be a whole number from 0", "amend_periods")
        return Billing(
            first_period,
            self.duration(node, entry, "grace", defaults.grace),
            int(amend),
            self.read_numbering(node, entry),
            self.duration(node, entry, "cell_wait", defaults.cell_wait),
        )

    def read_numbering(self, node: _Node, entry: str) -> Numbering:
        if node.get("numbering") is None:
            return Numbering()
        entry = f"{entry}.numbering"
        numbering = self.mapping(node["numbering"], entry, line=node.key_lines.get("numbering"))
        self.known_fields(numbering, entry, ("prefix", "per"))
        prefix = numbering.get("prefix", "")
        if not isinstance(prefix, str):
            raise self.fail(numbering, entry, f"must be text, not {_kind(prefix)}", "prefix")
        per = numbering.get("per", NumberingScope.ISSUER.value)
        try:
            scope = NumberingScope(per)
        except ValueError:
            allowed = " | ".join(scope.value for scope in NumberingScope)
            raise self.fail(numbering, entry, f"unknown scope {per!r} (expected {allowed})", "per") from None
        return Numbering(prefix, scope)

    def duration(self, node: _Node, entry: str, name: str, default: timedelta) -> timedelta:
        value = node.get(name)
        if value is None:
            return default
        parsed = parse_duration(value) if isinstance(value, str) else None
        if parsed is None:
            raise self.fail(
                node,
                entry,
                f"{value!r} is not an ISO 8601 duration in days, hours, minutes or seconds (PT1H, P2D)",
                name,
            )
        return parsed


V1_CREDITS_PREFIX = "credits:"
"""v1 ``credits`` become one grant per period, named ``credits:<YYYY-MM>``."""

_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?",
    re.ASCII,
)


def parse_duration(text: str) -> timedelta | None:
    """An ISO 8601 duration of fixed length (weeks, days, hours, minutes, seconds), or None.
    Years and months are refused: they have no fixed length."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or text.strip().endswith("T") or not any(match.groupdict().values()):
        return None
    parts = {name: int(value) for name, value in match.groupdict().items() if value}
    return timedelta(**parts)


def _kind(value: Any) -> str:
    """What a YAML value is, in the catalog author's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Decimal):
        return f"the number {value}"
    if isinstance(value, date):
        return f"the date {value}"
    return repr(value)
