"""One stack's configuration, validated once into a typed, frozen object.

Pulumi hands a program its configuration as strings (structured values as JSON text); the
stack files in stacks/ hold the same keys as YAML. Both paths end in `load_stack_config`, so a
bad key fails the same way in a preview, a test and a deployment: one line naming the stack
and the key.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
STACKS_DIR = REPO_ROOT / "stacks"
PROJECT = "meterline"
CLOUDS = ("aws", "gcp", "azure")
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
REQUIRED_TAGS = ("owner", "cost-center")
# Where each cloud's provider reads its region from (azure-native calls it a location).
REGION_KEYS = {"aws": "aws:region", "gcp": "gcp:region", "azure": "azure-native:location"}
# Log Analytics keeps 30 to 730 days on the pay-as-you-go tier.
AZURE_LOG_RETENTION_DAYS = (30, 730)
# Managed Service for Apache Kafka: at least 3 vCPUs, 1 to 8 GiB of memory per vCPU.
MANAGED_KAFKA_MIN_VCPUS = 3
# Event Hubs tiers that carry the Kafka endpoint; the longest retention each allows (hours).
EVENT_HUBS_MAX_RETENTION_HOURS = {"Standard": 7 * 24, "Premium": 90 * 24}
_STACK_NAME = re.compile(r"^(?P<home>home-)?(?P<cloud>aws|gcp|azure)-(?P<region>[a-z0-9-]+)$")
HOME_CLOUDS = ("aws",)
"""Where a billing home can run: its statements bucket trusts every cell's cloud identity (IAM)."""
_NAME_SUFFIX = re.compile(r"^[a-z0-9]{4,6}$")
_KNOWN_KEYS = frozenset(
    {
        "aws:region",
        "meterline:cloud",
        "meterline:expectedLoad",
        "meterline:budgetUsdMonth",
        "meterline:catalog",
        "meterline:tags",
        "meterline:logRetentionDays",
        "meterline:network",
        "meterline:kafkaPollers",
        "meterline:managedKafka",
        "meterline:eventHubs",
        "meterline:nameSuffix",
        "meterline:home",
    }
)
_HOME_KEYS = frozenset(
    {
        "aws:region",
        "meterline:cloud",
        "meterline:expectedLoad",
        "meterline:budgetUsdMonth",
        "meterline:catalog",
        "meterline:tags",
        "meterline:logRetentionDays",
        "meterline:nameSuffix",
        "meterline:cells",
    }
)
_CELL_IDENTITY_KEYS = {
    "aws": ("publisherRoleArn",),
    "gcp": ("serviceAccountUniqueId",),
    "azure": ("tenantId", "principalId"),
}
"""What names a cell's publish identity when the home does not read it from the cell's stack."""


class ConfigError(ValueError):
    """A stack configuration that cannot be deployed: names the stack and the key."""


@dataclass(frozen=True, slots=True)
class ExpectedLoad:
    events_per_second: Decimal
    avg_event_bytes: int
    tenants: int


@dataclass(frozen=True, slots=True)
class NewNetwork:
    """A VPC this stack creates: private subnets only, one per availability zone."""

    cidr: str
    availability_zones: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExistingNetwork:
    """A VPC someone else owns: the cell only adds security groups and endpoints to it."""

    vpc_id: str
    subnet_ids: tuple[str, ...]
    route_table_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KafkaPollers:
    """Provisioned-mode event pollers of the Kafka trigger (needed for partial batch responses)."""

    minimum: int
    maximum: int


@dataclass(frozen=True, slots=True)
class GcpNetwork:
    """The VPC network and subnet a GCP cell creates for its Kafka cluster and functions' egress."""

    cidr: str


@dataclass(frozen=True, slots=True)
class ManagedKafka:
    """Capacity of a GCP cell's Managed Service for Apache Kafka cluster."""

    vcpus: int
    memory_gib: int


@dataclass(frozen=True, slots=True)
class EventHubs:
    """An Azure cell's Event Hubs namespace: tier and throughput (or processing) units."""

    sku: str
    capacity: int
    maximum_throughput_units: int

    @property
    def max_retention_hours(self) -> int:
        return EVENT_HUBS_MAX_RETENTION_HOURS[self.sku]


@dataclass(frozen=True, slots=True)
class HomeLink:
    """Where a cell publishes its statements: the home's stack (read by `pulumi.StackReference`), or
    the home's bucket, region and the role the home made for this cell, given in config."""

    stack: str | None = None
    bucket: str | None = None
    region: str | None = None
    role_arn: str | None = None


@dataclass(frozen=True, slots=True)
class CellPublisher:
    """One cell as the home sees it: its name (`<cloud>-<region>`, the statements' `<cell>/` prefix)
    and the identity its publish function runs as, read from the cell's stack or given here."""

    name: str
    cloud: str
    stack: str | None = None
    """The cell's stack for `pulumi.StackReference` (its `publisher` output); None: identity below
    (an Azure cell's tenant is always given: the home's OIDC provider per tenant is named by it)."""
    aws_role_arn: str | None = None
    gcp_unique_id: str | None = None
    """The numeric unique id of the cell's publisher service account (the `sub` of its ID tokens)."""
    azure_tenant_id: str | None = None
    azure_principal_id: str | None = None
    """The object (principal) id of the cell's publisher managed identity (the `sub` of its tokens)."""


@dataclass(frozen=True, slots=True)
class HomeSettings:
    cells: tuple[CellPublisher, ...]
    """The cells that report to the home; its close waits the catalog's `billing.cell_wait` for them."""


@dataclass(frozen=True, slots=True)
class StackConfig:
    stack: str
    cloud: str
    region: str
    load: ExpectedLoad
    budget_usd_month: Decimal
    catalog: Path
    tags: tuple[tuple[str, str], ...]
    log_retention_days: int
    network: NewNetwork | ExistingNetwork | GcpNetwork | None
    """AWS: a new or existing VPC; GCP: the cell's own network; Azure: none (public endpoints, Entra auth)."""
    kafka_pollers: KafkaPollers
    name_suffix: str
    """Ends every name that is global (DNS-visible) or outlives `pulumi destroy` (retained ledgers
    and keys, purge-protected vaults, undeletable key rings): a new suffix is a new incarnation."""
    project: str | None = None
    """The GCP project (`gcp:project`); None elsewhere."""
    managed_kafka: ManagedKafka | None = None
    event_hubs: EventHubs | None = None
    home: HomeLink | None = None
    """A cell's billing home; None until the home exists (its publish schedule stays paused)."""
    home_settings: HomeSettings | None = None
    """Set on a billing home's stack (`home-<cloud>-<region>`), None on a cell's."""

    @property
    def is_home(self) -> bool:
        return self.home_settings is not None

    @property
    def cell(self) -> str:
        """The short name every physical resource name starts with: `ml-use1`, a home's `ml-home-use1`."""
        return f"ml-{'home-' if self.is_home else ''}{_region_code(self.region, self.cloud)}"

    def unique(self, name: str) -> str:
        """`name` made unique to this cell's incarnation: `<name>-<nameSuffix>`."""
        return f"{name}-{self.name_suffix}"

    def resource_tags(self) -> dict[str, str]:
        return {"app": PROJECT, "cell": self.stack, **dict(self.tags)}


def stack_file(stack: str) -> Path:
    return STACKS_DIR / f"Pulumi.{stack}.yaml"


def stack_names(directory: Path = STACKS_DIR) -> list[str]:
    return sorted(
        path.name.removeprefix("Pulumi.").removesuffix(".yaml") for path in directory.glob("Pulumi.*.yaml")
    )


def read_stack_file(stack: str) -> dict[str, str]:
    """A stack file's `config:` in the form Pulumi gives a program: strings, objects as JSON text."""
    path = stack_file(stack)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"stack {stack}: cannot read {path} ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"stack {stack}: {path} is not valid YAML ({error})") from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise ConfigError(f"stack {stack}: {path} has no `config:` mapping")
    return {str(key): _as_pulumi_text(value) for key, value in config.items()}


def _as_pulumi_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def load_stack_config(stack: str, raw: Mapping[str, str]) -> StackConfig:
    """Validate `raw` (Pulumi's `namespace:key` → text) for `stack`; raise one ConfigError."""
    reader = _Reader(stack, raw)
    matched = _STACK_NAME.match(stack)
    if not matched:
        raise ConfigError(f"stack {stack}: stack names are <cloud>-<region>, e.g. aws-us-east-1")
    cloud, region = matched["cloud"], matched["region"]
    cell = not matched["home"]
    (_check_cell_keys if cell else _check_home_keys)(stack, raw, reader, cloud, region)
    return StackConfig(
        stack=stack,
        cloud=cloud,
        region=region,
        load=reader.load(),
        budget_usd_month=reader.decimal("meterline:budgetUsdMonth", positive=True),
        catalog=reader.catalog(),
        tags=reader.tags(),
        log_retention_days=reader.log_retention(cloud),
        network=reader.cell_network(cloud, region) if cell else None,
        kafka_pollers=reader.kafka_pollers() if cell and cloud == "aws" else KafkaPollers(1, 1),
        name_suffix=reader.name_suffix(),
        project=reader.text("gcp:project") if cell and cloud == "gcp" else None,
        managed_kafka=reader.managed_kafka() if cell and cloud == "gcp" else None,
        event_hubs=reader.event_hubs() if cell and cloud == "azure" else None,
        home=reader.home_link() if cell else None,
        home_settings=None if cell else HomeSettings(reader.cells()),
    )


def _check_cell_keys(stack: str, raw: Mapping[str, str], reader: _Reader, cloud: str, region: str) -> None:
    unknown = sorted(key for key in raw if key.startswith("meterline:") and key not in _KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"stack {stack}: unknown key {unknown[0]}")
    configured = reader.text("meterline:cloud")
    if configured not in CLOUDS:
        raise ConfigError(
            f"stack {stack}: meterline:cloud must be one of {', '.join(CLOUDS)}, not {configured!r}"
        )
    if configured != cloud:
        raise ConfigError(f"stack {stack}: meterline:cloud is {configured} but the stack name says {cloud}")
    region_key = REGION_KEYS[cloud]
    configured = reader.text(region_key)
    if configured != region:
        raise ConfigError(f"stack {stack}: {region_key} is {configured} but the stack name says {region}")
    for key, only in (("meterline:kafkaPollers", "aws"), ("meterline:managedKafka", "gcp")):
        if key in raw and cloud != only:
            raise ConfigError(f"stack {stack}: {key} applies to {only} cells only, not {cloud}")
    if "meterline:eventHubs" in raw and cloud != "azure":
        raise ConfigError(f"stack {stack}: meterline:eventHubs applies to azure cells only, not {cloud}")


def _check_home_keys(stack: str, raw: Mapping[str, str], reader: _Reader, cloud: str, region: str) -> None:
    unknown = sorted(key for key in raw if key.startswith("meterline:") and key not in _HOME_KEYS)
    if unknown:
        raise ConfigError(f"stack {stack}: unknown key {unknown[0]} (a billing home's stack)")
    if cloud not in HOME_CLOUDS:
        raise ConfigError(f"stack {stack}: a billing home runs on {', '.join(HOME_CLOUDS)}, not {cloud}")
    for key, named in (("meterline:cloud", cloud), ("aws:region", region)):
        if reader.text(key) != named:
            raise ConfigError(f"stack {stack}: {key} is {reader.text(key)} but the stack name says {named}")


def load_from_pulumi() -> StackConfig:
    import pulumi
    from pulumi.runtime.config import CONFIG, get_config_env

    raw = {**get_config_env(), **CONFIG.get()}
    return load_stack_config(pulumi.get_stack(), {str(k): str(v) for k, v in raw.items()})


class _Reader:
    def __init__(self, stack: str, raw: Mapping[str, str]) -> None:
        self.stack = stack
        self.raw = raw

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"stack {self.stack}: {key} {problem}")

    def text(self, key: str) -> str:
        value = self.raw.get(key)
        if value is None or not value.strip():
            raise self.fail(key, "is missing")
        return value.strip()

    def structured(self, key: str) -> Any:
        text = self.text(key)
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise self.fail(key, "must be a mapping") from None

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self.structured(key)
        if not isinstance(value, dict):
            raise self.fail(key, "must be a mapping")
        return value

    def decimal(self, key: str, *, positive: bool, value: object = None) -> Decimal:
        text = self.text(key) if value is None else value
        if isinstance(text, bool) or not isinstance(text, str | int):
            raise self.fail(key, f"must be a decimal string, not {text!r}")
        try:
            number = Decimal(str(text))
        except InvalidOperation:
            raise self.fail(key, f"must be a decimal number, not {text!r}") from None
        if not number.is_finite() or (positive and number <= 0):
            raise self.fail(key, f"must be a positive number, not {text!r}")
        return number

    def integer(self, key: str, value: object, *, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.fail(key, f"must be a whole number, not {value!r}")
        try:
            number = int(value)
        except ValueError:
            raise self.fail(key, f"must be a whole number, not {value!r}") from None
        if number < minimum:
            raise self.fail(key, f"must be at least {minimum}, not {number}")
        return number

    def load(self) -> ExpectedLoad:
        key = "meterline:expectedLoad"
        load = self.mapping(key)
        for field in ("eventsPerSecond", "avgEventBytes", "tenants"):
            if field not in load:
                raise self.fail(f"{key}.{field}", "is missing")
        return ExpectedLoad(
            events_per_second=self.decimal(
                f"{key}.eventsPerSecond", positive=True, value=load["eventsPerSecond"]
            ),
            avg_event_bytes=self.integer(f"{key}.avgEventBytes", load["avgEventBytes"], minimum=1),
            tenants=self.integer(f"{key}.tenants", load["tenants"], minimum=1),
        )

    def catalog(self) -> Path:
        from meterline.catalog import CatalogError, load_catalog

        key = "meterline:catalog"
        path = Path(self.text(key))
        resolved = path if path.is_absolute() else REPO_ROOT / path
        if not resolved.is_file():
            raise self.fail(key, f"names {path}, which is not a file in {REPO_ROOT}")
        try:
            load_catalog(resolved)
        except CatalogError as error:
            raise self.fail(key, f"is not a usable catalog: {error}") from None
        return resolved

    def tags(self) -> tuple[tuple[str, str], ...]:
        key = "meterline:tags"
        tags = self.mapping(key)
        for name in REQUIRED_TAGS:
            if not isinstance(tags.get(name), str) or not tags[name].strip():
                raise self.fail(f"{key}.{name}", "is missing (every cell names its owner and cost centre)")
        for name, value in tags.items():
            if not isinstance(value, str):
                raise self.fail(f"{key}.{name}", f"must be a string, not {value!r}")
        return tuple(sorted((str(name), value) for name, value in tags.items()))

    def log_retention(self, cloud: str) -> int:
        key = "meterline:logRetentionDays"
        if cloud == "gcp":
            if key in self.raw:
                raise self.fail(
                    key, "does not apply to gcp cells (functions log to the project's _Default bucket)"
                )
            return 30
        days = self.integer(key, self.raw.get(key, "30"), minimum=1)
        if cloud == "azure":
            low, high = AZURE_LOG_RETENTION_DAYS
            if not low <= days <= high:
                raise self.fail(key, f"must be {low} to {high} days (Log Analytics), not {days}")
            return days
        if days not in LOG_RETENTION_DAYS:
            raise self.fail(
                key, f"must be a CloudWatch retention period ({', '.join(map(str, LOG_RETENTION_DAYS))})"
            )
        return days

    def network(self, region: str) -> NewNetwork | ExistingNetwork:
        key = "meterline:network"
        network = self.mapping(key) if key in self.raw else {}
        if "vpcId" in network:
            subnets = self._strings(f"{key}.subnetIds", network.get("subnetIds"))
            if len(subnets) < 2:
                raise self.fail(
                    f"{key}.subnetIds", "needs at least 2 subnets in different zones (MSK Serverless)"
                )
            return ExistingNetwork(
                vpc_id=self._string(f"{key}.vpcId", network["vpcId"]),
                subnet_ids=subnets,
                route_table_ids=self._strings(f"{key}.routeTableIds", network.get("routeTableIds")),
            )
        cidr = network.get("cidr", "10.42.0.0/16")
        try:
            block = ipaddress.ip_network(cidr)
        except (TypeError, ValueError):
            raise self.fail(f"{key}.cidr", f"is not a CIDR block: {cidr!r}") from None
        if block.prefixlen > 20:
            raise self.fail(f"{key}.cidr", "must be /20 or larger (one /24 or bigger subnet per zone)")
        zones = self._strings(
            f"{key}.availabilityZones", network.get("availabilityZones", [f"{region}a", f"{region}b"])
        )
        if len(set(zones)) < 2:
            raise self.fail(f"{key}.availabilityZones", "needs at least 2 distinct zones (MSK Serverless)")
        foreign = [zone for zone in zones if not zone.startswith(region)]
        if foreign:
            raise self.fail(f"{key}.availabilityZones", f"names {foreign[0]}, which is not in {region}")
        return NewNetwork(cidr=str(block), availability_zones=zones)

    def gcp_network(self) -> GcpNetwork:
        key = "meterline:network"
        network = self.mapping(key) if key in self.raw else {}
        unknown = sorted(set(network) - {"cidr"})
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}", "is not a gcp network setting (only cidr)")
        cidr = network.get("cidr", "10.52.0.0/20")
        try:
            block = ipaddress.ip_network(cidr)
        except (TypeError, ValueError):
            raise self.fail(f"{key}.cidr", f"is not a CIDR block: {cidr!r}") from None
        if block.prefixlen > 24:
            raise self.fail(f"{key}.cidr", "must be /24 or larger (Kafka endpoints and functions' egress)")
        return GcpNetwork(cidr=str(block))

    def cell_network(self, cloud: str, region: str) -> NewNetwork | ExistingNetwork | GcpNetwork | None:
        if cloud == "aws":
            return self.network(region)
        if cloud == "gcp":
            return self.gcp_network()
        if "meterline:network" in self.raw:
            raise self.fail("meterline:network", "does not apply to azure cells (no VNet is created)")
        return None

    def managed_kafka(self) -> ManagedKafka:
        key = "meterline:managedKafka"
        kafka = self.mapping(key) if key in self.raw else {}
        vcpus = self.integer(f"{key}.vcpus", kafka.get("vcpus", MANAGED_KAFKA_MIN_VCPUS), minimum=3)
        memory = self.integer(f"{key}.memoryGib", kafka.get("memoryGib", vcpus), minimum=1)
        if not vcpus <= memory <= 8 * vcpus:
            raise self.fail(
                f"{key}.memoryGib", f"must be 1 to 8 GiB per vCPU ({vcpus} to {8 * vcpus}), not {memory}"
            )
        return ManagedKafka(vcpus, memory)

    def event_hubs(self) -> EventHubs:
        key = "meterline:eventHubs"
        hubs = self.mapping(key) if key in self.raw else {}
        sku = hubs.get("sku", "Standard")
        if sku not in EVENT_HUBS_MAX_RETENTION_HOURS:
            tiers = ", ".join(EVENT_HUBS_MAX_RETENTION_HOURS)
            raise self.fail(
                f"{key}.sku", f"must be one of {tiers} (the tiers with a Kafka endpoint), not {sku!r}"
            )
        capacity = self.integer(f"{key}.capacity", hubs.get("capacity", 1), minimum=1)
        maximum = self.integer(
            f"{key}.maximumThroughputUnits", hubs.get("maximumThroughputUnits", capacity), minimum=capacity
        )
        if sku == "Standard" and maximum > 40:
            raise self.fail(f"{key}.maximumThroughputUnits", "must be at most 40 on Standard")
        return EventHubs(str(sku), capacity, maximum)

    def name_suffix(self) -> str:
        key = "meterline:nameSuffix"
        suffix = self.text(key)
        if not _NAME_SUFFIX.match(suffix):
            raise self.fail(
                key,
                f"must be 4 to 6 lowercase letters or digits, not {suffix!r} "
                "(e.g. `pulumi config set meterline:nameSuffix $(openssl rand -hex 2)`)",
            )
        return suffix

    def home_link(self) -> HomeLink | None:
        key = "meterline:home"
        if key not in self.raw:
            return None
        home = self.mapping(key)
        if "stack" in home:
            extra = sorted(set(home) - {"stack"})
            if extra:
                raise self.fail(
                    f"{key}.{extra[0]}", "goes with no `stack` (read the home's outputs, or name them all)"
                )
            return HomeLink(stack=self._string(f"{key}.stack", home["stack"]))
        for field in ("bucket", "region", "roleArn"):
            if field not in home:
                raise self.fail(f"{key}.{field}", "is missing (or name the home's `stack` instead)")
        role = self._string(f"{key}.roleArn", home["roleArn"])
        if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", role):
            raise self.fail(f"{key}.roleArn", f"is not an IAM role ARN: {role!r}")
        return HomeLink(
            bucket=self._string(f"{key}.bucket", home["bucket"]),
            region=self._string(f"{key}.region", home["region"]),
            role_arn=role,
        )

    def cells(self) -> tuple[CellPublisher, ...]:
        key = "meterline:cells"
        cells = self.structured(key)
        if not isinstance(cells, list) or not cells:
            raise self.fail(key, "must be a non-empty list of cells (name, and stack or identity)")
        found: list[CellPublisher] = []
        for index, cell in enumerate(cells):
            at = f"{key}[{index}]"
            if not isinstance(cell, dict):
                raise self.fail(at, "must be a mapping with a name, and a stack or an identity")
            name = self._string(f"{at}.name", cell.get("name"))
            matched = _STACK_NAME.match(name)
            if not matched or matched["home"]:
                raise self.fail(f"{at}.name", f"must be a cell's stack name <cloud>-<region>, not {name!r}")
            if name in {c.name for c in found}:
                raise self.fail(f"{at}.name", f"names {name} twice")
            cloud = matched["cloud"]
            has_stack, identity = "stack" in cell, cell.get("identity")
            if has_stack == (identity is not None):
                raise self.fail(at, "needs exactly one of `stack` (read by StackReference) and `identity`")
            if has_stack:
                # An Azure cell's tenant names the home's OIDC provider for it: one per tenant, so
                # it is known before the cell's outputs are.
                tenant = self._string(f"{at}.tenantId", cell.get("tenantId")) if cloud == "azure" else None
                extra = sorted(set(cell) - {"name", "stack", *(["tenantId"] if tenant else [])})
                if extra:
                    raise self.fail(
                        f"{at}.{extra[0]}", "is not a cell setting (name, stack, tenantId on azure)"
                    )
                found.append(
                    CellPublisher(
                        name, cloud, stack=self._string(f"{at}.stack", cell["stack"]), azure_tenant_id=tenant
                    )
                )
                continue
            if not isinstance(identity, dict):
                raise self.fail(f"{at}.identity", "must be a mapping")
            wanted = _CELL_IDENTITY_KEYS[cloud]
            for field in wanted:
                self._string(f"{at}.identity.{field}", identity.get(field))
            extra = sorted(set(identity) - set(wanted))
            if extra:
                raise self.fail(
                    f"{at}.identity.{extra[0]}", f"is not a {cloud} identity field ({', '.join(wanted)})"
                )
            found.append(
                CellPublisher(
                    name,
                    cloud,
                    aws_role_arn=identity.get("publisherRoleArn"),
                    gcp_unique_id=identity.get("serviceAccountUniqueId"),
                    azure_tenant_id=identity.get("tenantId"),
                    azure_principal_id=identity.get("principalId"),
                )
            )
        return tuple(found)

    def kafka_pollers(self) -> KafkaPollers:
        key = "meterline:kafkaPollers"
        pollers = self.mapping(key) if key in self.raw else {}
        minimum = self.integer(f"{key}.minimum", pollers.get("minimum", 1), minimum=1)
        maximum = self.integer(f"{key}.maximum", pollers.get("maximum", 3), minimum=minimum)
        if maximum > 2000:
            raise self.fail(f"{key}.maximum", "must be at most 2000")
        return KafkaPollers(minimum, maximum)

    def _string(self, key: str, value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "must be a non-empty string")
        return value

    def _strings(self, key: str, value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(key, "must be a non-empty list")
        return tuple(self._string(f"{key}[{index}]", item) for index, item in enumerate(value))


# Azure regions have no dashes; these are the codes Azure's own naming guidance uses.
_AZURE_REGION_CODES = {
    "eastus": "eus",
    "eastus2": "eus2",
    "westus2": "wus2",
    "westus3": "wus3",
    "centralus": "cus",
    "westeurope": "weu",
    "northeurope": "neu",
    "uksouth": "uks",
    "swedencentral": "sec",
    "southeastasia": "sea",
    "centralindia": "inc",
}


def _region_code(region: str, cloud: str = "aws") -> str:
    """`us-east-1` → `use1`, `ap-south-1` → `aps1`: short enough for 64-character IAM role names;
    GCP `us-central1` → `usc1`, `europe-west1` → `euw1`; Azure `eastus` → `eus`."""
    if cloud == "azure":
        return _AZURE_REGION_CODES.get(region, region[:8])
    if cloud == "gcp":
        head, _, rest = region.partition("-")
        return head[:2] + rest[:1] + rest.lstrip("abcdefghijklmnopqrstuvwxyz")
    parts = region.split("-")
    return parts[0] + "".join(part[0] for part in parts[1:-1]) + parts[-1]
