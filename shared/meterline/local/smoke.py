"""`meterline smoke`: a deployed cell checked in minutes, through its own front door.

It reads the cell's `cell_settings` stack output (what a client of the cell's topics and ledgers
sets: the same variables its functions read, parsed by the same cloud's ``Settings.from_env``),
publishes a few hundred events for one tenant to ``usage.events``, then watches the cell's ledgers:
every event metered (its usage item written), then the tenant's running charges for the open
period rewritten. Smoke usage is real usage: it is billed to the tenant named, so name an internal
test customer of the catalog. Event ids carry the run's id, so a second run is new usage, never a
duplicate of the first.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from meterline.bootstrap import LazyPublisher
from meterline.catalog import Aggregation, Catalog, load_catalog
from meterline.periods import Period
from meterline.pipeline.usage_ledger import UsageLedger
from meterline.ports import Item, Publisher, Store
from meterline.records import key_part
from meterline.settings import SettingsError
from meterline.terms import terms
from meterline.topology import CHARGES_TABLE, USAGE_EVENTS

if TYPE_CHECKING:
    from meterline.adapters.aws_lambda import AwsSettings
    from meterline.adapters.azure_functions import AzureSettings
    from meterline.adapters.gcp_functions import GcpSettings

SOURCE = "meterline-smoke"
CLOUDS = ("aws", "gcp", "azure")


class SmokeError(RuntimeError):
    """A smoke run that cannot start: one line saying what is missing."""


@dataclass(frozen=True)
class SmokeEvent:
    key: tuple[str, str, str]
    """(subject, source, id): what the usage ledger files the event under."""
    line: bytes


@dataclass
class SmokeReport:
    stack: str
    tenant: str
    period: Period
    sent: int
    metered: int = 0
    seconds_to_meter: float | None = None
    charges_before: Item | None = None
    charges_after: Item | None = None
    seconds_to_charges: float | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def charges_updated(self) -> bool:
        return self.charges_after is not None and self.charges_after != self.charges_before

    @property
    def ok(self) -> bool:
        return self.metered == self.sent and self.charges_updated

    def lines(self) -> list[str]:
        def took(seconds: float | None) -> str:
            return "not within the timeout" if seconds is None else f"in {seconds:.1f} s"

        lines = [
            f"{self.stack}: {self.sent} events sent to {USAGE_EVENTS.name} for {self.tenant} ({self.period})",
            f"metered: {self.metered} of {self.sent} {took(self.seconds_to_meter)}",
        ]
        if self.missing:
            lines.append(f"not metered (first ids): {', '.join(self.missing[:5])}")
        lines.append(
            f"running charges: {_charges(self.charges_before)} -> {_charges(self.charges_after)} "
            f"{took(self.seconds_to_charges) if self.charges_updated else '(not updated)'}"
        )
        lines.append("OK" if self.ok else "FAILED")
        return lines


def _charges(item: Item | None) -> str:
    if item is None:
        return "none"
    currency, subtotal, spend = (str(item.get(name, "")) for name in ("currency", "subtotal", "spend"))
    return f"{currency} subtotal {subtotal}, spend {spend}"


def smoke_events(catalog: Catalog, tenant: str, count: int, run: str, now: datetime) -> list[SmokeEvent]:
    """`count` valid events for `tenant`, cycling through the catalog's event types, each carrying
    what that type's meters read (1 of each quantity) and group by ("smoke"), a millisecond apart
    up to `now`."""
    types = sorted(catalog.meters_by_type)
    if not types:
        raise SmokeError("the catalog has no meters: there is nothing to send")
    events = []
    for number in range(count):
        event_type = types[number % len(types)]
        data: dict[str, Any] = {}
        for meter in catalog.meters_by_type[event_type]:
            for key in meter.group_by:
                _put(data, tuple(key.split(".")), "smoke")
            if meter.value is not None:
                value: Any = f"smoke-{number}" if meter.aggregation is Aggregation.UNIQUE_COUNT else 1
                _put(data, meter.value, value)
        event_id = f"smoke-{run}-{number:05d}"
        moment = now - timedelta(milliseconds=count - number)
        document = {
            "specversion": "1.0",
            "id": event_id,
            "source": f"{SOURCE}/{run}",
            "type": event_type,
            "subject": tenant,
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "data": data,
        }
        events.append(SmokeEvent((tenant, f"{SOURCE}/{run}", event_id), orjson.dumps(document)))
    return events


def _put(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        data = data.setdefault(part, {})
    data[path[-1]] = value


@dataclass(frozen=True)
class Cell:
    store: Store
    publisher: Publisher


def connect(cloud: str, settings: Mapping[str, str], catalog: Path) -> Cell:
    """The cell's store and publisher, from its settings read by the cloud's own settings schema."""
    env = {**settings, "METERLINE_CATALOG": str(catalog.resolve())}
    schema: type[AwsSettings | GcpSettings | AzureSettings]
    if cloud == "aws":
        from meterline.adapters.aws_lambda import AwsSettings as schema
    elif cloud == "gcp":
        from meterline.adapters.gcp_functions import GcpSettings as schema
    elif cloud == "azure":
        from meterline.adapters.azure_functions import AzureSettings as schema
    else:
        raise SmokeError(f"no cloud {cloud!r}: expected one of {', '.join(CLOUDS)}")
    try:
        read = schema.from_env(env, catalog.parent)
    except SettingsError as error:
        raise SmokeError(f"the stack's cell_settings: {error}") from None
    return Cell(read.open_store(), LazyPublisher(read.open_publisher))


def run(
    stack: str,
    cell: Cell,
    catalog: Catalog,
    tenant: str,
    *,
    count: int = 300,
    timeout: float = 600.0,
    poll: float = 2.0,
    now: datetime | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SmokeReport:
    moment = now or datetime.now(UTC)
    period = Period.of(moment)
    customer = catalog.customers.get(tenant)
    if customer is None:
        raise SmokeError(f"tenant {tenant!r} is not a customer of the catalog: nothing would be rated")
    if not any(
        first <= moment.day < end for first, end in (term.days for term in terms(catalog, customer, period))
    ):
        raise SmokeError(
            f"tenant {tenant!r} has no subscription active on {moment:%Y-%m-%d}: nothing would be rated"
        )
    events = smoke_events(catalog, tenant, count, uuid.uuid4().hex[:12], moment)
    charges_key = (key_part(tenant), f"{period}|running")
    report = SmokeReport(stack, tenant, period, len(events))
    report.charges_before = cell.store.get(CHARGES_TABLE.name, *charges_key)
    started = clock()
    for event in events:
        cell.publisher.publish(USAGE_EVENTS.name, tenant.encode(), event.line)
    cell.publisher.flush()
    deadline = started + timeout
    usage = UsageLedger(cell.store)
    waiting = {event.key: event.key[2] for event in events}
    while waiting and clock() < deadline:
        waiting = {key: id_ for key, id_ in waiting.items() if usage.standing(key) is None}
        if waiting:
            sleep(poll)
    report.metered = len(events) - len(waiting)
    report.missing = sorted(waiting.values())
    if not waiting:
        report.seconds_to_meter = clock() - started
    while True:
        report.charges_after = cell.store.get(CHARGES_TABLE.name, *charges_key)
        if report.charges_updated:
            report.seconds_to_charges = clock() - started
            break
        if clock() >= deadline:
            break
        sleep(poll)
    return report


def load_outputs(stack: str, outputs: Path | None) -> dict[str, Any]:
    """The stack's outputs: the file given, else `pulumi stack output --json --stack STACK`."""
    import subprocess

    if outputs is not None:
        try:
            document = orjson.loads(outputs.read_bytes())
        except OSError as error:
            raise SmokeError(f"cannot read {outputs}: {error.strerror}") from None
        except orjson.JSONDecodeError:
            raise SmokeError(f"{outputs} is not JSON (pulumi stack output --json)") from None
    else:
        try:
            ran = subprocess.run(
                ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack],
                capture_output=True,
                check=False,
            )
        except FileNotFoundError:
            raise SmokeError(
                "the pulumi CLI is not on PATH: pass the stack's outputs with --outputs"
            ) from None
        if ran.returncode != 0:
            last = (ran.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            raise SmokeError(f"pulumi stack output --stack {stack}: {last}")
        document = orjson.loads(ran.stdout)
    if not isinstance(document, dict):
        raise SmokeError("stack outputs must be a JSON object")
    for name in ("cell_settings", "cost_inputs"):
        if not isinstance(document.get(name), dict):
            raise SmokeError(f"stack {stack} exports no {name!r} object: deploy the current program first")
    return document


def smoke_stack(
    stack: str,
    outputs: Path | None,
    catalog_path: Path,
    tenant: str,
    count: int,
    timeout: float,
    overrides: Mapping[str, str] | None = None,
) -> SmokeReport:
    """Everything `meterline smoke` does: outputs, wiring, the run."""
    document = load_outputs(stack, outputs)
    cloud = str(document["cost_inputs"].get("cloud"))
    settings = {str(k): str(v) for k, v in document["cell_settings"].items()}
    catalog = load_catalog(catalog_path)
    cell = connect(cloud, {**settings, **(overrides or {})}, catalog_path)
    return run(stack, cell, catalog, tenant, count=count, timeout=timeout)
