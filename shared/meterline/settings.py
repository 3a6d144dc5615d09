"""What a function of a billing cell is configured with, as one typed schema per cloud.

Infra renders a function's settings with ``to_env`` and the function reads them back with
``from_env``: the same dataclass on both sides, so a setting infra forgets is a missing
constructor argument at deploy time, not a function failing on its first call, and a variable
infra sets that no function reads is not a field of any schema (tests/infra round-trip every
stack's functions through it). The schemas of the clouds are in their adapters
(``adapters/aws_lambda``, ``adapters/gcp_functions``, ``adapters/azure_functions``); this module
holds what they share. Nothing here reads the environment: ``from_env`` is handed a mapping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Self, get_type_hints

CATALOG = Path("catalog.yaml")
"""Where a function's package holds its cell's catalog."""


class SettingsError(ValueError):
    """A setting is missing or cannot be read: one line naming it."""


class KafkaAuth(StrEnum):
    """How the function's Kafka clients authenticate, with one meaning on every cloud."""

    IDENTITY = "identity"
    """The function's own cloud identity: MSK IAM on AWS, a Google access token (OAUTHBEARER) on
    GCP, a Microsoft Entra token (OAUTHBEARER) on Azure."""
    NONE = "none"
    """A plaintext listener without authentication: the local runtime's broker, never a cloud's."""


def env(name: str, default: Any = dataclasses.MISSING, *, platform: bool = False) -> Any:
    """A field read from the variable ``name``. ``platform``: the cloud's runtime sets it (infra
    must not, and cannot: Lambda reserves ``AWS_REGION``), so ``to_env`` leaves it out unless asked."""
    return dataclasses.field(default=default, metadata={"env": name, "platform": platform})


@dataclass(frozen=True, kw_only=True)
class CellSettings:
    """What every function reads, on every cloud."""

    cloud: ClassVar[str]
    what: ClassVar[str] = "function setting"

    table_prefix: str = env("METERLINE_TABLE_PREFIX")
    """The ledgers' names are this prefix and the topology's table names."""
    catalog: Path = env("METERLINE_CATALOG", CATALOG)
    """The catalog file, relative to the function's package root."""
    kafka_bootstrap: str = env("METERLINE_KAFKA_BOOTSTRAP", "")
    """Only the functions that publish or read a topic themselves need the broker."""
    kafka_auth: KafkaAuth = env("METERLINE_KAFKA_AUTH", KafkaAuth.IDENTITY)

    def __post_init__(self) -> None:
        if not self.table_prefix:
            raise SettingsError(f"the {self.what} METERLINE_TABLE_PREFIX is empty")

    @classmethod
    def from_env(cls, variables: Mapping[str, str], package_root: Path) -> Self:
        """The settings in ``variables``; the catalog's path is taken relative to ``package_root``."""
        values: dict[str, Any] = {}
        for field, kind in _fields(cls):
            name = field.metadata["env"]
            text = variables.get(name)
            if not text:
                if field.default is dataclasses.MISSING:
                    raise SettingsError(f"the {cls.what} {name} is missing")
                continue
            values[field.name] = _parsed(cls, name, kind, text)
        values["catalog"] = package_root / values.get("catalog", CATALOG)
        return cls(**values)

    def to_env(self, *, platform: bool = False) -> dict[str, str]:
        """The variables that give a function these settings (``platform``: with those its
        runtime sets itself); a setting left at its default is left out."""
        variables = {}
        for field, _ in _fields(type(self)):
            value = getattr(self, field.name)
            if field.metadata["platform"] and not platform:
                continue
            if field.default is not dataclasses.MISSING and value == field.default:
                continue
            variables[field.metadata["env"]] = str(value)
        return variables

    @classmethod
    def variables(cls) -> frozenset[str]:
        """Every variable the schema reads."""
        return frozenset(field.metadata["env"] for field, _ in _fields(cls))

    def require_kafka(self) -> str:
        if not self.kafka_bootstrap:
            raise SettingsError(f"the {self.what} METERLINE_KAFKA_BOOTSTRAP is missing")
        return self.kafka_bootstrap


_FIELDS: dict[type[CellSettings], tuple[tuple[dataclasses.Field[Any], Any], ...]] = {}


def _fields(cls: type[CellSettings]) -> tuple[tuple[dataclasses.Field[Any], Any], ...]:
    """The schema's fields, each with its type."""
    if cls not in _FIELDS:
        hints = get_type_hints(cls)
        fields = dataclasses.fields(cls)
        _FIELDS[cls] = tuple((field, hints[field.name]) for field in fields if "env" in field.metadata)
    return _FIELDS[cls]


def _parsed(cls: type[CellSettings], name: str, kind: Any, text: str) -> Any:
    if kind is str or kind is Path:
        return kind(text)
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        try:
            return kind(text)
        except ValueError:
            choices = ", ".join(member.value for member in kind)
            raise SettingsError(f"the {cls.what} {name} is one of {choices}, not {text!r}") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise SettingsError(f"the {cls.what} {name} must be a number, not {text!r}") from None
    raise TypeError(f"{cls.__name__}: no reader for a {kind!r} setting")
