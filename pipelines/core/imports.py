"""A project's import graph, read from the source (AST), never by importing it.

`ImportGraph(root, packages)` follows the imports of `packages` under `root` (function-level
imports too, relative ones resolved): `closure(modules)` is every project module that
importing them loads, with the `__init__.py` of each package on the way. The `zoo` stage
hashes the closure of a competition's model families with it; `tests/dag.py` derives
dvc.yaml's deps with it.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path


class ImportGraph:
    def __init__(self, root: Path, packages: tuple[str, ...]):
        self.root, self.packages = Path(root), packages
        self.imports_of = cache(self._imports_of)

    def module_file(self, module: str) -> Path | None:
        base = self.root / module.replace(".", "/")
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
        return None

    def module_name(self, path: Path) -> str:
        parts = Path(path).relative_to(self.root).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    def _imports_of(self, module: str) -> frozenset[str]:
        """Project modules that `module` imports anywhere in its body."""
        path = self.module_file(module)
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                # `from pipelines.models import tabular` imports the submodule when there is one
                base = _absolute(module, path, node)
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            found.update(n for n in names if n.split(".")[0] in self.packages and self.module_file(n))
        return frozenset(found - {module})

    def closure(self, roots) -> set[str]:
        seen: set[str] = set()
        todo = [p for r in roots for p in with_parents(r)]
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            for imported in self.imports_of(module):
                todo.extend(with_parents(imported))
        return seen

    def files(self, modules) -> list[str]:
        """The source files of `modules`, relative to the root, empty `__init__.py` files aside."""
        paths = (self.module_file(m) for m in modules)
        return sorted(str(p.relative_to(self.root)) for p in paths if p.stat().st_size)


def with_parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The module a `from ... import` names, a relative one (`from .common import x`) resolved."""
    if not node.level:
        return node.module
    package = module.split(".")[: None if path.name == "__init__.py" else -1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))
