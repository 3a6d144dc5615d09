"""Markets (SPEC §8): the cloud and region of the cell that measured usage, as dimensions a meter
may group by (``$cloud``, ``$region``) and as what a charge's ``where`` matches.

A cell is named ``<cloud>-<region>`` (``aws-us-east-1``, ``gcp-europe-west1``); ``local`` is the
cell of a usage file given without one, cloud ``local`` and region ``local``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CLOUD = "$cloud"
REGION = "$region"
DIMENSIONS = (CLOUD, REGION)
"""The group_by names a cell fills in, not the event's data."""


@dataclass(frozen=True, slots=True)
class Market:
    cloud: str
    region: str

    @classmethod
    def of_cell(cls, cell: str) -> Market:
        """``<cloud>-<region>``, split at the first dash; a name without one is both (``local``)."""
        cloud, dash, region = cell.partition("-")
        return cls(cloud, region) if dash and cloud and region else cls(cell, cell)

    def value(self, dimension: str) -> str:
        return self.cloud if dimension == CLOUD else self.region


LOCAL = Market.of_cell("local")


@dataclass(frozen=True, slots=True)
class Where:
    """The markets a charge prices: each named dimension must match one of its values."""

    clouds: frozenset[str] | None = None
    regions: frozenset[str] | None = None

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The market dimensions it names."""
        return tuple(
            name for name, values in ((CLOUD, self.clouds), (REGION, self.regions)) if values is not None
        )

    def matches(self, names: Sequence[str], group: Sequence[object]) -> bool:
        """Whether the market in a line's group (its meter's group_by ``names``) is one of these."""
        for dimension, values in ((CLOUD, self.clouds), (REGION, self.regions)):
            if values is not None and group[names.index(dimension)] not in values:
                return False
        return True
