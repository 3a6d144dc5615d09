"""A handler's import closure in the meterline core: every core module a handler can import when
it runs, read from the source (``ast``), so a function archive holds exactly these and no
exclusion list decides what ships.

Imports inside functions count (the jobs are imported when first asked for, and run then); imports
under ``if TYPE_CHECKING:`` do not (they never run). Importing ``a.b.c`` runs the ``__init__`` of
``a`` and ``a.b`` too, so those are in the closure. Modules outside the core (the standard library,
third-party packages) are the runtime's or the layer's and are not followed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

CORE = "meterline"


def core_closure(handler: Path, core_dir: Path) -> set[Path]:
    """The files of ``core_dir`` (the ``meterline`` package directory) that ``handler`` can import."""
    root = core_dir.parent
    found: set[Path] = set()
    pending = [(handler, "")]
    while pending:
        source, package = pending.pop()
        for name in _imported(source, package):
            for path in _module_files(name, root):
                if path not in found:
                    found.add(path)
                    module_package = ".".join(path.relative_to(root).with_suffix("").parts)
                    if path.name != "__init__.py":
                        module_package = module_package.rpartition(".")[0]
                    else:
                        module_package = module_package.removesuffix(".__init__")
                    pending.append((path, module_package))
    return found


def _imported(source: Path, package: str) -> Iterator[str]:
    """Each dotted name an import statement of ``source`` can load (``from a import b`` names
    ``a`` and ``a.b``, as ``b`` may be a module), relative imports resolved against ``package``."""
    for node in run_time_nodes(ast.parse(source.read_bytes(), str(source))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def run_time_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node but the bodies of ``if TYPE_CHECKING:``."""
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_files(name: str, root: Path) -> list[Path]:
    """The files importing ``name`` runs, if it is a core module: each enclosing package's
    ``__init__.py`` and the module's own file. Nothing for a name outside the core, or a name
    that is not a module (``from meterline.ports import Store``: ``Store``)."""
    parts = name.split(".")
    if parts[0] != CORE:
        return []
    files: list[Path] = []
    for depth in range(1, len(parts) + 1):
        directory = root.joinpath(*parts[:depth])
        if (directory / "__init__.py").is_file():
            files.append(directory / "__init__.py")
        elif depth == len(parts) and directory.with_suffix(".py").is_file():
            files.append(directory.with_suffix(".py"))
        else:
            return files if depth == len(parts) else []
    return files
