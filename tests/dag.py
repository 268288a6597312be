"""The project's import graph, read from the source (AST), never by importing it.

`stage_files(stage)` is what `python -m pipelines <stage>` loads of the project: the CLI, the
stage's module and everything they import, transitively, with the `__init__.py` of each
package on the way. The registry imports a model family by name when one of its models is
asked for, which no import statement shows: a stage that imports `pipelines.models.registry`
also loads every module of its `FAMILIES` table (read from registry.py's source) and what
those import. `dvc.yaml`'s deps are derived from it:

    python -m tests.dag            # print each stage's derived deps
    python -m tests.dag --write    # rewrite the `pipelines/...` deps in dvc.yaml with them
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "pipelines"  # what the stages run
PACKAGES = (PACKAGE, "benchmarks", "tests")  # the project's own packages: the imports `imports_of` follows
DATA_DEPS = {"download": ["pipelines/resources"]}  # files a stage reads that no import shows
REGISTRY = f"{PACKAGE}.models.registry"  # imports the modules its FAMILIES table names, by name


def module_file(module: str) -> Path | None:
    base = ROOT / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The module a `from ... import` names, a relative one (`from .common import x`) resolved."""
    if not node.level:
        return node.module
    package = module.split(".")[: None if path.name == "__init__.py" else -1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def imports_of(module: str) -> frozenset[str]:
    """Project modules (of PACKAGES) that `module` imports anywhere in its body (function-level
    imports too)."""
    path = module_file(module)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            # `from pipelines.models import tabular` imports the submodule when there is one
            base = _absolute(module, path, node)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in PACKAGES and module_file(n))
    return frozenset(found - {module})


def project_modules(packages=PACKAGES) -> list[str]:
    """Every module of `packages`, by name."""
    return sorted(module_name(p) for package in packages for p in (ROOT / package).rglob("*.py"))


def with_parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def closure(roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = [p for r in roots for p in with_parents(r)]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for imported in imports_of(module):
            todo.extend(with_parents(imported))
    return seen


@cache
def families() -> tuple[str, ...]:
    """The model family modules of the registry's `FAMILIES` table (model name -> module)."""
    for node in ast.parse(module_file(REGISTRY).read_text(encoding="utf-8")).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "FAMILIES":
            return tuple(sorted(set(ast.literal_eval(node.value).values())))
    raise LookupError(f"no FAMILIES table in {module_file(REGISTRY)}")


def stage_files(stage: str) -> list[str]:
    modules = closure([f"{PACKAGE}.__main__", f"{PACKAGE}.stages.{stage}"])
    if REGISTRY in modules:  # a stage that builds models may load any family
        modules |= closure(list(families()))
    paths = (module_file(m) for m in modules)
    return sorted(str(p.relative_to(ROOT)) for p in paths if p.stat().st_size)  # an empty __init__ does nothing


def derived_deps(stage: str) -> list[str]:
    """The stage's files, a folder standing for all of its files when the stage loads every one."""
    files = set(stage_files(stage))
    deps = set(files)
    for folder in sorted({str(Path(f).parent) for f in files}, key=len):
        inside = {str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*.py") if p.stat().st_size}
        if folder != PACKAGE and inside <= files:
            deps = {d for d in deps if not d.startswith(folder + "/")} | {folder}
    deps = {d for d in deps if not any(d.startswith(o + "/") for o in deps if o != d)}
    return sorted(deps) + DATA_DEPS.get(stage, [])


def _rewrite(text: str, stages: list[str]) -> str:
    for stage in stages:
        block = re.search(rf"(?ms)^  {stage}:\n.*?^      deps:\n(.*?)(?=^      \w)", text)
        lines = block.group(1).splitlines(keepends=True)
        kept = [ln for ln in lines if not ln.strip().startswith("- pipelines/")]
        derived = [f"        - {d}\n" for d in derived_deps(stage)]
        text = text[: block.start(1)] + "".join(kept + derived) + text[block.end(1) :]
    return text


if __name__ == "__main__":
    import yaml

    dvc_yaml = ROOT / "dvc.yaml"
    stages = list(yaml.safe_load(dvc_yaml.read_text())["stages"])
    if "--write" in sys.argv:
        dvc_yaml.write_text(_rewrite(dvc_yaml.read_text(), stages))
    for stage in stages:
        print(f"{stage}:", *(f"  - {d}" for d in derived_deps(stage)), sep="\n")
