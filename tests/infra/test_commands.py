"""infra depends on meterline, never the reverse: infra adds its commands to the `meterline` CLI."""

from __future__ import annotations

import ast
import tomllib
from importlib import import_module
from pathlib import Path

from meterline.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_meterline_module_imports_infra() -> None:
    # GIVEN every module of the meterline package WHEN their imports are read THEN none is infra's
    importing = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "shared" / "meterline").rglob("*.py"))
        if "infra" in imported_roots(path)
    ]
    assert importing == []


def test_infra_declares_cost_stacks_and_smoke_as_meterline_commands_and_each_loads() -> None:
    # GIVEN the entry points pyproject.toml declares for the CLI
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = project["entry-points"][COMMANDS]

    # THEN they are infra's three commands, each an add_parser that adds its command
    assert set(declared) == {"cost", "stacks", "smoke"}
    parser = build_parser()
    for name, target in declared.items():
        module, _, function = target.partition(":")
        assert module.startswith("infra.")
        subparsers = parser._subparsers._group_actions[0]  # type: ignore[union-attr]
        subparsers.choices.pop(name, None)
        getattr(import_module(module), function)(subparsers)
        assert name in subparsers.choices
