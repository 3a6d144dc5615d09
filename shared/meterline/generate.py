"""`meterline generate`: a realistic month of usage events for a catalog, with the faults real feeds have.

The events follow the catalog's meters: each event type carries the data keys its meters read and
group by. An event type that a ``time_weighted`` meter reads is a gauge, sampled on the hour for
every series (one per tenant and group); the others are flows spread over the month with a daily
rhythm. Usage comes in integers (bytes, minutes, counts), so no number is ever a float.

Faults, each an exact share of the lines written: duplicates (the same bytes re-sent a little
later), conflicts (an earlier event's key with other content), malformed lines of several kinds
(each rejected with a SPEC §1 reason), and late events (times in the previous month, written at
the end). Same catalog, arguments and seed: byte-identical output.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson

from meterline.catalog import Aggregation, Catalog, Meter
from meterline.markets import DIMENSIONS
from meterline.periods import Period


class GenerateError(ValueError):
    """Arguments that cannot make an event file."""


MAX_EVENTS = 100_000_000
"""The most lines one file holds: ~25 GB of NDJSON, whose duplicates and conflicts the generator
still plans in memory (~1.5% of the lines)."""
MAX_TENANTS = 100_000
"""The most tenants: each needs a few gauge readings at least, so more would need more events
than a file holds; and each is planned in memory before the first line."""


@dataclass(frozen=True)
class FaultRates:
    """Each fault's share of the lines written."""

    duplicate: Decimal = Decimal("0.01")
    conflict: Decimal = Decimal("0.005")
    late: Decimal = Decimal("0.01")
    malformed: Decimal = Decimal("0.01")


@dataclass(frozen=True)
class GenerateSpec:
    period: Period
    tenants: int
    seed: int
    events: int
    """Lines to write, faults included."""
    faults: FaultRates = FaultRates()


@dataclass(frozen=True)
class LineCounts:
    """What the file holds: rating it reconciles to these."""

    usage: int
    """Valid, unique events in the period."""
    duplicates: int
    conflicts: int
    malformed: int
    late: int

    @property
    def total(self) -> int:
        return self.usage + self.duplicates + self.conflicts + self.malformed + self.late

    def by_outcome(self) -> dict[str, int]:
        """What rating the file must find, by the names of its summary."""
        return {
            "accepted": self.usage,
            "duplicates": self.duplicates,
            "conflict": self.conflicts,
            "rejected": self.conflicts + self.malformed,
            "out_of_period": self.late,
            "received": self.total,
        }


def line_counts(spec: GenerateSpec) -> LineCounts:
    if spec.events < 1:
        raise GenerateError(f"--events must be at least 1, not {spec.events}")
    if spec.events > MAX_EVENTS:
        raise GenerateError(f"--events must be at most {MAX_EVENTS:,}, not {spec.events:,}")
    if spec.tenants < 1:
        raise GenerateError(f"--tenants must be at least 1, not {spec.tenants}")
    if spec.tenants > MAX_TENANTS:
        raise GenerateError(f"--tenants must be at most {MAX_TENANTS:,}, not {spec.tenants:,}")
    if spec.period.previous().year < 1:
        raise GenerateError(f"--period {spec.period}: late events fall in the month before; there is none")
    shares = {}
    for name in ("duplicate", "conflict", "late", "malformed"):
        rate: Decimal = getattr(spec.faults, name)
        if not rate.is_finite() or not 0 <= rate <= 1:
            raise GenerateError(f"--{name}-rate must be between 0 and 1, not {rate}")
        shares[name] = int((spec.events * rate).to_integral_value())
    usage = spec.events - sum(shares.values())
    if usage < 1:
        raise GenerateError("the fault rates leave no room for usage events: keep their sum below 1")
    return LineCounts(usage, shares["duplicate"], shares["conflict"], shares["malformed"], shares["late"])


def generate(catalog: Catalog, spec: GenerateSpec) -> Iterator[bytes]:
    """The lines of the event file, each ending in a newline."""
    counts = line_counts(spec)
    return _Generator(catalog, spec, counts).lines()


# --- the shape of the events, read from the catalog ---------------------------------------------

_FLOW = "flow"  # a sum: an amount per event
_LEVEL = "level"  # a gauge reading, or a max/min/latest: the state of something
_IDENTIFIER = "identifier"  # what unique_count counts

_KIND_OF = {
    Aggregation.SUM: _FLOW,
    Aggregation.UNIQUE_COUNT: _IDENTIFIER,
    Aggregation.TIME_WEIGHTED: _LEVEL,
    Aggregation.MAX: _LEVEL,
    Aggregation.MIN: _LEVEL,
    Aggregation.LATEST: _LEVEL,
}

_GIB = 2**30
_MONTHLY_FLOW = {"bytes": 1536 * _GIB, "cfu_minutes": 20_000, "requests": 5_000_000}
"""A median tenant's month of each flow, in the event's own unit."""
_FAN_OUT = {"egress": 2.5}
"""Flows larger than the median by their event type's last word: each byte written is read ~2.5 times."""
_LEVELS = {"bytes": 512 * _GIB, "partitions": 300, "units": 1.5, "tasks": 2, "cku": 2, "ecku": 1.5}
"""A median tenant's gauge reading; resources grow slower than traffic (scale ** 0.7)."""
_ID_PREFIXES = {"cluster": "lkc-", "compute_pool": "lfcp-", "connector": "lcc-", "environment": "env-"}
_REGIONS = {
    "USD": ("us-east-1", "us-west-2"),
    "EUR": ("eu-west-1", "eu-central-1"),
    "JPY": ("ap-northeast-1",),
}
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True)
class _Field:
    path: tuple[str, ...]
    kind: str
    meter: Meter


@dataclass
class _Shape:
    """One event type: what its events carry."""

    type: str
    gauge: bool
    group_keys: tuple[str, ...]
    fields: tuple[_Field, ...]
    core: bool = True
    """Every tenant sends it (it describes a resource other types share); otherwise some do."""


def _shapes(catalog: Catalog) -> list[_Shape]:
    shapes = []
    for event_type, meters in catalog.meters_by_type.items():
        group_keys: dict[str, None] = {}
        fields: dict[tuple[str, ...], _Field] = {}
        for meter in meters:
            # $cloud and $region are the cell's, not the event's
            group_keys.update(dict.fromkeys(name for name in meter.group_by if name not in DIMENSIONS))
            if meter.value is not None and meter.value not in fields:
                fields[meter.value] = _Field(meter.value, _KIND_OF[meter.aggregation], meter)
        gauge = any(meter.aggregation is Aggregation.TIME_WEIGHTED for meter in meters)
        shapes.append(_Shape(event_type, gauge, tuple(group_keys), tuple(fields.values())))
    users: dict[str, int] = {}
    for shape in shapes:
        for key in shape.group_keys:
            users[key] = users.get(key, 0) + 1
    for shape in shapes[1:]:
        shape.core = any(users[key] > 1 for key in shape.group_keys)
    return shapes


# --- tenants --------------------------------------------------------------------------------------


@dataclass
class _Tenant:
    id: str
    region: str
    scale: float
    pools: dict[str, list[str]]
    shapes: list[_Shape]
    series: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """Per gauge event type: the group values of each series it samples."""


def _tenants(catalog: Catalog, spec: GenerateSpec, shapes: list[_Shape], rng: random.Random) -> list[_Tenant]:
    customers = list(catalog.customers.values())[: spec.tenants]
    ids = [customer.tenant for customer in customers]
    taken = set(ids)
    number = 0
    while len(ids) < spec.tenants:
        number += 1
        candidate = f"org-t{number:05d}"
        if candidate not in taken:
            ids.append(candidate)
    group_keys = sorted({key for shape in shapes for key in shape.group_keys})
    tenants = []
    for position, tenant_id in enumerate(ids):
        currency, committed = "USD", False
        if position < len(customers):
            versions = catalog.plans[customers[position].subscriptions[-1].plan]
            currency = versions[-1].currency
            committed = any(plan.minimum_commit for plan in versions)
        scale = min(25.0, max(0.05, rng.lognormvariate(0, 1))) * (6 if committed else 1)
        pools = {key: _pool(key, scale, rng) for key in group_keys}
        used = [shape for shape in shapes if shape.core or rng.random() < 0.6]
        tenant = _Tenant(tenant_id, rng.choice(_REGIONS.get(currency, _REGIONS["USD"])), scale, pools, used)
        for shape in used:
            if shape.gauge:
                tenant.series[shape.type] = _combinations(shape.group_keys, pools)
        tenants.append(tenant)
    return tenants


def _pool(key: str, scale: float, rng: random.Random) -> list[str]:
    size = 1 + min(3, int(rng.random() * (1 + math.log2(1 + scale))))
    prefix = _ID_PREFIXES.get(key, f"{key}-")
    return [prefix + "".join(rng.choices(_ALPHABET, k=5)) for _ in range(size)]


def _combinations(keys: tuple[str, ...], pools: dict[str, list[str]]) -> list[dict[str, str]]:
    combos: list[dict[str, str]] = [{}]
    for key in keys:
        combos = [{**combo, key: value} for combo in combos for value in pools[key]]
    return combos


# --- the generator --------------------------------------------------------------------------------


class _Generator:
    def __init__(self, catalog: Catalog, spec: GenerateSpec, counts: LineCounts) -> None:
        self.catalog = catalog
        self.spec = spec
        self.counts = counts
        self.rng = random.Random(spec.seed)
        self.shapes = _shapes(catalog)
        self.tenants = _tenants(catalog, spec, self.shapes, self.rng)
        self.hours = int((spec.period.end - spec.period.start) / timedelta(hours=1))
        self.salt = self.rng.getrandbits(64) | 1
        self.sequence = 0
        series = sum(len(s) for tenant in self.tenants for s in tenant.series.values())
        flows = [(t, s) for t in self.tenants for s in t.shapes if not s.gauge]
        gauge_budget = counts.usage if not flows else counts.usage // 2
        samples = min(self.hours, gauge_budget // series) if series else 0
        if series and samples == 0:
            raise GenerateError(
                f"--events {spec.events} is too few for {spec.tenants} tenants: "
                f"their gauges alone need at least {series * 2} events"
            )
        self.sampled_hours = {self.hours * i // samples for i in range(samples)} if samples else set()
        self.flow_events = counts.usage - samples * series
        self.extra_readings = 0
        if not flows:  # only gauges: a few series read once more, half past the last hour
            self.flow_events, self.extra_readings = 0, counts.usage - samples * series
        self.flows = flows
        self.flow_weights = list(_cumulative([t.scale**0.5 for t, _ in flows]))
        self.levels: dict[tuple[str, str, int, tuple[str, ...]], float] = {}
        self.flow_means = self._flow_means(samples, series)
        self.hour_prefixes = [
            (spec.period.start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:") for h in range(self.hours)
        ]

    # the stream ----------------------------------------------------------------------------------

    def lines(self) -> Iterator[bytes]:
        counts, rng = self.counts, self.rng
        usage = self._usage()
        if counts.usage > counts.duplicates + counts.conflicts:
            picks = rng.sample(range(counts.usage), counts.duplicates + counts.conflicts)
        else:
            picks = [rng.randrange(counts.usage) for _ in range(counts.duplicates + counts.conflicts)]
        resend: dict[int, list[bool]] = {}
        for number, index in enumerate(picks):
            resend.setdefault(index, []).append(number < counts.duplicates)
        broken: dict[int, int] = {}
        for _ in range(counts.malformed):
            index = rng.randrange(counts.usage)
            broken[index] = broken.get(index, 0) + 1
        later: list[tuple[int, int, bytes]] = []
        for index, (document, line) in enumerate(usage):
            yield line
            for identical in resend.get(index, ()):
                again = line if identical else _dump(self._conflicting(document))
                heapq.heappush(later, (index + 1 + int(rng.expovariate(1 / 200)), self._next(), again))
            for _ in range(broken.get(index, 0)):
                yield self._malformed()
            while later and later[0][0] <= index:
                yield heapq.heappop(later)[2]
        while later:
            yield heapq.heappop(later)[2]
        yield from self._late()

    def _usage(self) -> Iterator[tuple[dict[str, Any], bytes]]:
        """The period's valid, unique events in time order: gauges on the hour, flows between."""
        rng, weights, total_weight = self.rng, self.flow_weights, self.flow_weights[-1] if self.flows else 0
        hour_shares = list(_cumulative(_hour_weight(self.spec.period, h) for h in range(self.hours)))
        placed = 0
        for hour in range(self.hours):
            prefix = self.hour_prefixes[hour]
            if hour in self.sampled_hours:
                yield from self._readings(prefix + "00:00Z")
            if hour == self.hours - 1 and self.extra_readings:
                yield from itertools.islice(self._readings(prefix + "30:00Z"), self.extra_readings)
            upto = round(self.flow_events * hour_shares[hour] / hour_shares[-1])
            picks = rng.choices(self.flows, cum_weights=weights, k=upto - placed) if total_weight else []
            placed = upto
            for millis, (tenant, shape) in sorted(
                zip((int(rng.random() * 3_600_000) for _ in picks), picks, strict=True), key=_first
            ):
                seconds, millis = divmod(millis, 1000)
                when = f"{prefix}{seconds // 60:02d}:{seconds % 60:02d}.{millis:03d}Z"
                document = self._flow(tenant, shape, when)
                yield document, _dump(document)

    def _readings(self, when: str) -> Iterator[tuple[dict[str, Any], bytes]]:
        for tenant in self.tenants:
            for shape in tenant.shapes:
                for number, group in enumerate(tenant.series.get(shape.type, ())):
                    document = self._gauge(tenant, shape, number, group, when)
                    yield document, _dump(document)

    # events --------------------------------------------------------------------------------------

    def _envelope(self, tenant: _Tenant, shape: _Shape, when: str, group: dict[str, str]) -> dict[str, Any]:
        resource = next(iter(group.values()), shape.type.partition(".")[0])
        return {
            "specversion": "1.0",
            "id": self._next_id(),
            "source": f"{resource}/{tenant.region}",
            "type": shape.type,
            "subject": tenant.id,
            "time": when,
            "data": dict(group),
        }

    def _gauge(
        self, tenant: _Tenant, shape: _Shape, number: int, group: dict[str, str], when: str
    ) -> dict[str, Any]:
        document = self._envelope(tenant, shape, when, group)
        data = document["data"]
        for fld in shape.fields:
            if fld.kind == _LEVEL:
                value: Any = self._level(tenant, shape, number, fld)
            elif fld.kind == _FLOW:
                value = self._amount(tenant, shape, fld)
            else:
                value = self._identifier(tenant, fld)
            _put(data, fld.path, value)
        return document

    def _flow(self, tenant: _Tenant, shape: _Shape, when: str) -> dict[str, Any]:
        group = {key: self.rng.choice(tenant.pools[key]) for key in shape.group_keys}
        document = self._envelope(tenant, shape, when, group)
        data = document["data"]
        for fld in shape.fields:
            if fld.kind == _FLOW:
                value: Any = self._amount(tenant, shape, fld)
            elif fld.kind == _LEVEL:
                value = max(
                    1, int(_LEVELS.get(fld.path[-1], 10) * tenant.scale**0.7 * (0.5 + self.rng.random()))
                )
            else:
                value = self._identifier(tenant, fld)
            _put(data, fld.path, value)
        return document

    def _level(self, tenant: _Tenant, shape: _Shape, number: int, fld: _Field) -> int:
        """A random walk with a slight upward drift, kept at 1 or more."""
        key = (tenant.id, shape.type, number, fld.path)
        level = self.levels.get(key)
        if level is None:
            level = _LEVELS.get(fld.path[-1], 10) * tenant.scale**0.7 * (0.5 + self.rng.random())
        else:
            level *= 0.975 + 0.05 * self.rng.random() + 0.0005
        self.levels[key] = level
        return max(1, round(level))

    def _amount(self, tenant: _Tenant, shape: _Shape, fld: _Field) -> int:
        return max(
            1, int(self.flow_means[(tenant.id, shape.type)][fld.path] * (0.25 + 1.5 * self.rng.random()))
        )

    def _identifier(self, tenant: _Tenant, fld: _Field) -> int:
        population = 20 + int(120 * min(tenant.scale, 10))
        return 100_000 + self.rng.randrange(population)

    def _flow_means(self, samples: int, series: int) -> dict[tuple[str, str], dict[tuple[str, ...], float]]:
        """Each flow's amount per event, so that a tenant's month totals its size whatever --events is."""
        expected: dict[tuple[str, str], float] = {}
        previous = 0.0
        for (tenant, shape), weight in zip(self.flows, self.flow_weights, strict=True):
            expected[(tenant.id, shape.type)] = self.flow_events * (weight - previous) / self.flow_weights[-1]
            previous = weight
        for tenant in self.tenants:
            for shape in tenant.shapes:
                if shape.gauge:
                    expected[(tenant.id, shape.type)] = samples * len(tenant.series[shape.type])
        return {
            (tenant.id, shape.type): {
                fld.path: _MONTHLY_FLOW.get(fld.path[-1], 10_000 * int(fld.meter.divide_by or 1))
                * tenant.scale
                * _FAN_OUT.get(shape.type.rpartition(".")[2], 1.0)
                / max(1.0, expected[(tenant.id, shape.type)])
                for fld in shape.fields
                if fld.kind == _FLOW
            }
            for tenant in self.tenants
            for shape in tenant.shapes
        }

    def _next(self) -> int:
        self.sequence += 1
        return self.sequence

    def _next_id(self) -> str:
        """Unique and random-looking: an odd multiplier is a bijection on 64-bit numbers."""
        return format((self._next() * 0x9E3779B97F4A7C15 + self.salt) & 0xFFFF_FFFF_FFFF_FFFF, "016x")

    # faults --------------------------------------------------------------------------------------

    def _conflicting(self, document: dict[str, Any]) -> dict[str, Any]:
        """Same (subject, source, id), other content: a producer that reused an id."""
        changed: dict[str, Any] = orjson.loads(orjson.dumps(document))
        numbers = [path for path, value in _leaves(changed["data"]) if type(value) is int]
        if numbers:
            path = self.rng.choice(numbers)
            _put(changed["data"], path, _get(changed["data"], path) + 1 + self.rng.randrange(1000))
        else:
            changed["data"]["retry"] = self._next()
        return changed

    def _late(self) -> Iterator[bytes]:
        """Valid events timed in the previous month, arriving after it closed."""
        previous = self.spec.period.previous()
        seconds = int((previous.end - previous.start).total_seconds())
        pool = self.flows or [(t, s) for t in self.tenants for s in t.shapes]
        for _ in range(self.counts.late):
            tenant, shape = self.rng.choice(pool)
            moment = previous.start + timedelta(seconds=self.rng.randrange(seconds))
            when = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
            if shape.gauge:
                group = self.rng.choice(tenant.series[shape.type])
                yield _dump(self._gauge(tenant, shape, 0, group, when))
            else:
                yield _dump(self._flow(tenant, shape, when))

    def _malformed(self) -> bytes:
        tenant, shape = self.rng.choice(self.flows or [(t, s) for t in self.tenants for s in t.shapes])
        when = self.hour_prefixes[self.rng.randrange(self.hours)] + "30:00Z"
        document = self._flow(tenant, shape, when)
        kinds = _MALFORMED_KINDS if any(f.kind != _IDENTIFIER for f in shape.fields) else _ENVELOPE_KINDS
        return self.rng.choice(kinds)(self, document, shape)


def _truncated(gen: _Generator, document: dict[str, Any], shape: _Shape) -> bytes:
    text = orjson.dumps(document)
    return text[: gen.rng.randrange(1, len(text) - 1)] + b"\n"


def _not_an_object(gen: _Generator, document: dict[str, Any], shape: _Shape) -> bytes:
    return _dump([document])


def _wrong_specversion(gen: _Generator, document: dict[str, Any], shape: _Shape) -> bytes:
    document["specversion"] = "0.3"
    return _dump(document)


def _no_subject(gen: _Generator, document: dict[str, Any], shape: _Shape) -> bytes:
    del document["subject"]
    return _dump(document)


def _bad_time(gen: _Generator, document: dict[str, Any], shape: _Shape) -> bytes:
    document["time"] = gen.rng.choice(
        [document["time"][:19], document["time"].replace("T", " ").replace(":30:", ":61:"), "yesterday"]
    )
    return _dump(document)


def _unknown_type(gen: _Generator, document: dict[str, Any], shape: _Shape) -> bytes:
    document["type"] = "kafka.audit_log.read"
    while document["type"] in gen.catalog.meters_by_type:
        document["type"] += ".v2"
    return _dump(document)


def _bad_value(gen: _Generator, document: dict[str, Any], shape: _Shape) -> bytes:
    fld = gen.rng.choice([f for f in shape.fields if f.kind != _IDENTIFIER])
    if fld.meter.aggregation in (Aggregation.SUM, Aggregation.TIME_WEIGHTED):
        bad: Any = gen.rng.choice([-_get(document["data"], fld.path), "lots", True, None, "NaN"])
    else:
        bad = gen.rng.choice(["lots", True, None, "NaN", {"value": 1}])
    _put(document["data"], fld.path, bad)
    return _dump(document)


def _missing_value(gen: _Generator, document: dict[str, Any], shape: _Shape) -> bytes:
    fld = gen.rng.choice(shape.fields)
    parent = document["data"]
    for step in fld.path[:-1]:
        parent = parent[step]
    del parent[fld.path[-1]]
    return _dump(document)


_Breaker = Callable[[_Generator, dict[str, Any], _Shape], bytes]
_ENVELOPE_KINDS: list[_Breaker] = [
    _truncated,
    _not_an_object,
    _wrong_specversion,
    _no_subject,
    _bad_time,
    _unknown_type,
]
_MALFORMED_KINDS: list[_Breaker] = [*_ENVELOPE_KINDS, _bad_value, _bad_value, _missing_value]


# --- small helpers --------------------------------------------------------------------------------


def _dump(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE)


def _first(item: tuple[int, Any]) -> int:
    return item[0]


def _cumulative(weights: Iterable[float]) -> Iterator[float]:
    total = 0.0
    for weight in weights:
        total += weight
        yield total


def _hour_weight(period: Period, hour: int) -> float:
    """Busier in working hours, quieter at weekends."""
    moment = period.start + timedelta(hours=hour)
    daily = 1 + 0.6 * math.sin(2 * math.pi * (moment.hour - 8) / 24)
    return daily * (0.6 if moment.weekday() >= 5 else 1.0)


def _put(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for step in path[:-1]:
        data = data.setdefault(step, {})
    data[path[-1]] = value


def _get(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for step in path:
        data = data[step]
    return data


def _leaves(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value
