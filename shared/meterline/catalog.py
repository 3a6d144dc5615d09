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
from unicodedata import is_normalized, normalize

import yaml

from meterline.heap import collector_paused
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
    text: str = field(default="", repr=False, compare=False)
    """The catalog file as read: its UTF-8 encoding is the bytes ``digest`` hashes, so the pipeline
    can store it as the snapshot an amendment re-rates with."""
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
        if not customer.charges:
            return plan.charges  # most customers: the plan's own, shared by all its invoices
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
    return parse_catalog_bytes(read_catalog_bytes(path), str(path))


def read_catalog_text(path: str | Path) -> str:
    """A catalog file's text (see ``read_catalog_bytes``)."""
    return _catalog_text(read_catalog_bytes(path), str(path))


def read_catalog_bytes(path: str | Path) -> bytes:
    """A catalog file's bytes, read no further than a catalog may be long (/dev/zero opens too)."""
    try:
        with Path(path).open("rb") as file:
            data = file.read(MAX_CATALOG_BYTES + 1)
    except OSError as error:
        raise CatalogError(f"{path}: cannot read the catalog ({error.strerror})") from None
    if len(data) > MAX_CATALOG_BYTES:
        raise CatalogError(f"{path}: {_TOO_LARGE}")
    return data


def sample_catalog() -> Catalog:
    """The catalog shipped with the package (``meterline/samples/catalog.yaml``)."""
    sample = resources.files("meterline").joinpath("samples", "catalog.yaml")
    return parse_catalog_bytes(sample.read_bytes(), "meterline/samples/catalog.yaml")


def parse_catalog_bytes(data: bytes, source: str = "<catalog>") -> Catalog:
    """A catalog file's bytes: its digest is theirs, whatever their line endings."""
    return parse_catalog(_catalog_text(data, source), source, digest=hashlib.sha256(data).hexdigest())


def _catalog_text(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CatalogError(f"{source}: the catalog is not UTF-8 text") from None


def parse_catalog(text: str, source: str = "<catalog>", *, digest: str | None = None) -> Catalog:
    """A catalog from its text; its digest is that of the text in UTF-8 unless given."""
    try:
        document = _load_yaml(text)
    except _RefusedError as error:
        raise CatalogError(f"{source}{_line_of(error)}: {error.problem}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
        if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
            problem = f"{problem}, {context} from line {context_mark.line + 1}"
        raise CatalogError(f"{source}{_line_of(error)}: not valid YAML ({_bounded(problem)})") from None
    except RecursionError:
        raise CatalogError(f"{source}: not valid YAML (nested too deeply)") from None
    if document is None:
        raise CatalogError(f"{source}: catalog: the catalog is empty (expected meters, plans, customers)")
    digest = digest or hashlib.sha256(text.encode("utf-8")).hexdigest()
    catalog = _CatalogReader(source).read(document, digest)
    object.__setattr__(catalog, "text", text)
    return catalog


# --- YAML loading that keeps exact numbers and line numbers --------------------------------------
#
# A catalog is plain YAML: no anchors, aliases or merge keys (an alias bomb of a few hundred bytes
# would otherwise expand to gigabytes), no tags beyond the core schema's, text keys only, and
# bounded sizes, so that loading any input takes time and memory linear in its length and every
# message quotes at most a short piece of it.

MAX_CATALOG_BYTES = 1 << 20
"""A catalog is at most 1 MiB of UTF-8: about 16,000 customers written as the sample writes them.
Every function loads it at a cold start: 1-1.7 s of CPU for that many customers; any 1 MiB input,
the costliest hostile shapes included, loads or is refused in ~10 s and ~400 MB at most
(``meterline bench --catalog``)."""
MAX_SCALAR_CHARACTERS = 256
"""The longest key or value a catalog holds: longer than any name, number, date or data path, and
short enough that a message quoting one stays a line."""
MAX_DEPTH = 32
"""Collections nested deeper than this are refused; a catalog needs 7 levels."""

_YAML = "tag:yaml.org,2002:"
_TAGS = frozenset(_YAML + tag for tag in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq"))
"""The YAML core schema's tags: plain YAML, which is all a catalog is written in."""
_TOO_LARGE = f"the catalog is larger than {MAX_CATALOG_BYTES:,} bytes (1 MiB), the most a catalog may be"


class _RefusedError(yaml.MarkedYAMLError):
    """Valid YAML that a catalog does not allow: ``problem`` says what, ``problem_mark`` where."""


def _refused(problem: str, mark: Any = None) -> _RefusedError:
    """``mark``: PyYAML's or libyaml's (its ``line`` counts from 0)."""
    return _RefusedError(problem=problem, problem_mark=mark)


class _Node(dict[str, Any]):
    """A mapping that remembers the line of each of its keys, and any key given twice."""

    line: int
    key_lines: dict[str, int]
    repeated: str | None = None


class _Seq(list[Any]):
    """A sequence that remembers the line of each item."""

    line: int
    item_lines: list[int]


class _CatalogLoader(yaml.composer.Composer, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """PyYAML's composer and safe constructor over libyaml's parser (PyYAML's own where it was built
    without libyaml: the same events, 3-4.5 times slower), refusing what a catalog does not allow
    as it meets it, before anything is built from it."""

    def __init__(self, text: str) -> None:
        if len(text) > MAX_CATALOG_BYTES:  # each character takes a byte at least
            raise _refused(_TOO_LARGE)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as error:
            line = text.count("\n", 0, error.start)
            raise _refused(
                f"U+{ord(text[error.start]):04X} is a lone surrogate, not Unicode text",
                yaml.Mark("<catalog>", error.start, line, 0, None, 0),
            ) from None
        if len(data) > MAX_CATALOG_BYTES:
            raise _refused(_TOO_LARGE)
        self.parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(data)
        self.depth = 0
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)

    def check_event(self, *choices: type[yaml.Event]) -> bool:
        return bool(self.parser.check_event(*choices))

    def peek_event(self) -> yaml.Event:
        event: yaml.Event = self.parser.peek_event()
        return event

    def get_event(self) -> yaml.Event:
        event: yaml.Event = self.parser.get_event()
        return event

    def dispose(self) -> None:
        self.parser.dispose()

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:  # an alias, or a node an alias could repeat
            name = f"{'*' if isinstance(event, yaml.AliasEvent) else '&'}{_bounded(str(anchor), 40)}"
            raise _refused(
                f"{name}: YAML anchors and aliases are not allowed in a catalog; write the value out",
                event.start_mark,
            )
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _refused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        node = super().compose_node(parent, index)
        self.depth -= 1
        assert node is not None
        if node.tag == _YAML + "value":  # a plain "=": text, as flatten_mapping would make it
            node.tag = _YAML + "str"
        if node.tag == _YAML + "merge":
            raise _refused(
                "<<: YAML merge keys are not allowed in a catalog; write each field out",
                node.start_mark,
            )
        if node.tag not in _TAGS:
            raise _refused(
                f"the YAML tag {_shown(node.tag)} is not allowed in a catalog (plain YAML only)",
                node.start_mark,
            )
        if isinstance(node, yaml.ScalarNode) and len(node.value) > MAX_SCALAR_CHARACTERS:
            raise _refused(
                f"{_shown(node.value)} is longer than the {MAX_SCALAR_CHARACTERS} characters"
                " a catalog key or value may be",
                node.start_mark,
            )
        return node


def _load_yaml(text: str) -> Any:
    # The cyclic collector is paused while the document is built: it is a tree, with nothing for the
    # collector to find, and its passes over the growing heap made a 1 MiB catalog load 1.5 times slower.
    with collector_paused():
        loader = _CatalogLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()


def _line_of(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    return f":{mark.line + 1}" if mark is not None else ""


def _shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, at most ``limit`` characters of it."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text):,} characters)"


def _bounded(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…"


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
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _refused("a key must be text, not a list or a mapping", key_node.start_mark)
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

# --- names that become store keys ----------------------------------------------------------------

MAX_TENANT_BYTES = 102
"""The longest tenant, in bytes of UTF-8, whose ledger keys every store takes. The strictest is Azure
Tables: a PartitionKey holds at most 1 KiB of UTF-16, 512 characters (Azurite refuses 513). A tenant
becomes a partition key through ``records.key_part``, which writes each of ``%/#\\?|`` as ``%XX``,
and then the Tables adapter's escape, which writes each ``%`` as ``%25`` and each byte of a
non-ASCII character as ``%XX``: at worst 5 characters for 1 byte of tenant, and 512 // 5 = 102.
(DynamoDB takes 2,048 bytes of partition key, 3 a byte here; Firestore 1,500 bytes of document id
for the partition and sort keys together, 5 a byte here.)"""


def key_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a tenant, or None. Events must carry it exactly and every store take
    it as a key: no white space at either end, nothing invisible, one Unicode spelling (NFC), and
    at most ``MAX_TENANT_BYTES``."""
    if name != name.strip():
        return f"{_shown(name)} has white space at its start or end"
    hidden = next((character for character in name if not character.isprintable()), None)
    if hidden is not None:
        return (
            f"{_shown(name)} holds U+{ord(hidden):04X}, which is not printable text"
            " (a control, format, surrogate, unassigned or space character other than ' ')"
        )
    if not is_normalized("NFC", name):
        spelled = normalize("NFC", name)
        return f"{name[:40]!a} is not in Unicode normal form NFC (NFC spells it {spelled[:40]!a})"
    size = len(name.encode("utf-8"))
    if size > MAX_TENANT_BYTES:
        return (
            f"{_shown(name)} takes {size:,} bytes of UTF-8; at most {MAX_TENANT_BYTES} make a key"
            " every store takes"
        )
    return None


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
        if field_name and not (field_name.isprintable() and len(field_name) <= 40):
            field_name = _shown(field_name)  # a key the document made up: one short, quoted line
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

    def key_name(self, node: _Node, entry: str, name: str, value: str) -> None:
        """A name events must carry exactly and that becomes a key in every store (a tenant)."""
        if problem := key_name_problem(value):
            raise self.fail(node, entry, problem, name)

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
            self.key_name(node, entry, "tenant", tenant)
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
