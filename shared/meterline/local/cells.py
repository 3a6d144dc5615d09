"""A deployment's cells by name (SPEC §8): ``<cloud>-<region>``, the cloud one the local runtime
runs. Light to import: the command line checks ``--cells`` with it before anything starts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

CLOUDS = ("aws", "gcp", "azure")
DEFAULT_CELLS = ("aws-ap-south-1", "gcp-europe-west1", "azure-westeurope")
"""Three cells on three clouds: the deployment ``make demo`` runs. The AWS cell is Mumbai, the
market the sample catalog prices egress in on its own, so the default run shows a regional price."""


class CellNameError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class CellName:
    cloud: str
    region: str

    @classmethod
    def parse(cls, text: str) -> CellName:
        cloud, _, region = text.partition("-")
        if cloud not in CLOUDS or not region:
            raise CellNameError(
                f"cell {text!r}: name it <cloud>-<region>, the cloud one of {', '.join(CLOUDS)}"
                " (aws-ap-south-1, gcp-europe-west1, azure-westeurope)"
            )
        return cls(cloud, region)

    def __str__(self) -> str:
        return f"{self.cloud}-{self.region}"


def parse_cells(names: Sequence[str]) -> list[CellName]:
    cells = [CellName.parse(name) for name in names]
    if len({str(cell) for cell in cells}) != len(cells):
        raise CellNameError(f"cells {', '.join(names)}: each cell once")
    return cells


STAND_BY_CELLS = ("aws-eu-west-1", "aws-us-east-1", "aws-ap-south-1")
"""What stands in for a default cell whose cloud cannot run on this machine (no Java and Google
Cloud SDK for the Firestore emulator, no Node.js for Azurite): AWS cells need nothing but Python."""


def runnable_cells(
    cells: Sequence[str], unavailable: Callable[[str], str | None]
) -> tuple[tuple[str, ...], list[str]]:
    """``cells`` with each one of a cloud that cannot run here replaced by a stand-by AWS cell, and
    a note per replacement saying why."""
    spare = [name for name in STAND_BY_CELLS if name not in cells]
    kept: list[str] = []
    notes: list[str] = []
    for name in cells:
        reason = unavailable(CellName.parse(name).cloud)
        if reason is None or not spare:
            kept.append(name)
            continue
        kept.append(spare.pop(0))
        notes.append(f"{name} runs as {kept[-1]}: {reason}")
    return tuple(kept), notes
