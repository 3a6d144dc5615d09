"""A deployment's cells by name, and the default deployment on a machine missing a stand-in."""

from __future__ import annotations

import pytest

from meterline.local.cells import DEFAULT_CELLS, CellName, CellNameError, parse_cells, runnable_cells
from meterline.local.demo_cells import split_events


def test_a_cell_is_named_cloud_dash_region() -> None:
    # GIVEN cell names / WHEN parsed / THEN the cloud is before the first dash, the region after it
    assert CellName.parse("gcp-europe-west1") == CellName("gcp", "europe-west1")
    assert str(CellName.parse("aws-us-east-1")) == "aws-us-east-1"


@pytest.mark.parametrize("names", [["aws"], ["oracle-phoenix"], ["aws-us-east-1", "aws-us-east-1"]])
def test_a_cell_of_no_cloud_the_runtime_runs_or_named_twice_is_refused(names: list[str]) -> None:
    with pytest.raises(CellNameError):
        parse_cells(names)


def test_a_default_cell_whose_stand_in_cannot_run_is_replaced_by_an_aws_cell_and_said_so() -> None:
    # GIVEN a machine without the Firestore emulator
    def unavailable(cloud: str) -> str | None:
        return "java is not installed" if cloud == "gcp" else None

    # WHEN the default deployment is made runnable
    cells, notes = runnable_cells(DEFAULT_CELLS, unavailable)

    # THEN the GCP cell runs as a stand-by AWS cell, in its place, and a note says why
    assert cells == ("aws-ap-south-1", "aws-eu-west-1", "azure-westeurope")
    assert notes == ["gcp-europe-west1 runs as aws-eu-west-1: java is not installed"]
    # AND with every stand-in there, nothing changes
    assert runnable_cells(DEFAULT_CELLS, lambda cloud: None) == (DEFAULT_CELLS, [])


def test_the_events_are_split_over_the_cells_to_the_last_event() -> None:
    assert split_events(12_000, 3) == [4_000, 4_000, 4_000]
    assert split_events(10, 3) == [4, 3, 3]
