"""The third-party modules a cloud's handlers can import: those the handlers and their import
closure in the core (``infra.closure``, relative and lazy imports followed) name, read from the source."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from infra.closure import core_closure, run_time_nodes

ROOT = Path(__file__).resolve().parents[2]
CORE_DIR = ROOT / "shared" / "meterline"
AWS_ONLY_IMPORTS = {"aws_msk_iam_sasl_signer"}
"""Imported by adapters/kafka.py's msk_iam_config alone, which only the AWS handlers call."""


def third_party_imports(cloud: str) -> set[str]:
    """Modules outside the standard library and meterline that the cloud's handlers can import
    when they run (imports under ``if TYPE_CHECKING:`` never do)."""
    handlers = sorted((ROOT / "functions").glob(f"*/{cloud}.py"))
    sources = {*handlers, *(path for handler in handlers for path in core_closure(handler, CORE_DIR))}
    found: set[str] = set()
    for path in sources:
        for node in run_time_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found.update(
                name
                for name in names
                if name.split(".")[0] != "meterline" and name.split(".")[0] not in sys.stdlib_module_names
            )
    return found if cloud == "aws" else found - AWS_ONLY_IMPORTS
