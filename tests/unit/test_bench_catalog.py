"""`meterline bench --catalog`: each shape is what it says, and the report names every figure."""

from __future__ import annotations

import yaml

from meterline.bench_catalog import SHAPES, Load, format_catalog_report, load
from meterline.catalog import MAX_CATALOG_BYTES


def test_each_shape_at_the_limit_is_within_one_percent_of_it_but_the_bomb_and_the_oversize() -> None:
    for shape, (_, build) in SHAPES.items():
        size = len(build(MAX_CATALOG_BYTES).encode())
        if shape == "alias bomb":
            assert size < 1_000
        elif shape == "oversize":
            assert size == 80 * 2**20
        else:
            assert 0.99 * MAX_CATALOG_BYTES <= size <= MAX_CATALOG_BYTES, shape


def test_the_baseline_loads_customers_and_the_hostile_shapes_are_refused() -> None:
    assert load("sample", 64 * 1024).outcome.startswith("loaded: ")
    assert load("alias bomb", MAX_CATALOG_BYTES).outcome.startswith("refused: <catalog>:1: &l0:")
    assert load("oversize", MAX_CATALOG_BYTES).outcome.endswith("the most a catalog may be")
    assert load("sample", 64 * 1024, without_libyaml=True).outcome == load("sample", 64 * 1024).outcome
    assert hasattr(yaml, "CSafeLoader") == yaml.__with_libyaml__  # and libyaml's parser is back


def test_the_report_gives_each_shapes_seconds_memory_ratio_and_scaling() -> None:
    report = {
        "limit_bytes": MAX_CATALOG_BYTES,
        "loads": {
            "sample": {
                **Load("sample", 1, 1.5, 60.0, "loaded: 3 customers").__dict__,
                "what": "w",
                "ratio_to_baseline": 1.0,
                "full_over_half": 2.01,
            },
            "keys": {
                **Load("keys", 1, 6.0, 380.0, "refused: x").__dict__,
                "what": "k",
                "ratio_to_baseline": 4.0,
            },
        },
        "pyyaml_parser_over_libyaml": 4.2,
    }
    text = format_catalog_report(report)
    assert "1.500 s" in text and "60.0 MB" in text and "full/half 2.01" in text
    assert "×4.000" in text and "refused: x" in text and "libyaml's: ×4.2" in text
