"""The project's import graph, read from the source (AST), never by importing it.

`stage_files(stage)` is what `python -m pipelines <stage>` loads of the project: the CLI, the
stage's module and everything they import, transitively, with the `__init__.py` of each
package on the way. The registry imports a model family by name when one of its models is
asked for, which no import statement shows: the `zoo` stage depends on every module of its
`FAMILIES` table (read from registry.py's source) and what those import, and writes a digest
of the ones each competition's models use, which the stages that build models depend on.
`dvc.yaml`'s deps are derived from it:

    python -m tests.dag            # print each stage's derived deps
    python -m tests.dag --write    # rewrite the `pipelines/...` deps in dvc.yaml with them
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from pathlib import Path

from pipelines.core.imports import ImportGraph

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "pipelines"  # what the stages run
PACKAGES = (PACKAGE, "benchmarks", "tests")  # the project's own packages: the imports `imports_of` follows
DATA_DEPS = {"download": ["pipelines/resources"]}  # files a stage reads that no import shows
REGISTRY = f"{PACKAGE}.models.registry"  # imports the modules its FAMILIES table names, by name
ZOO = "zoo"  # the stage that hashes each competition's model code (the others depend on its digest)


GRAPH = ImportGraph(ROOT, PACKAGES)
module_file, module_name, imports_of, closure = GRAPH.module_file, GRAPH.module_name, GRAPH.imports_of, GRAPH.closure


def project_modules(packages=PACKAGES) -> list[str]:
    """Every module of `packages`, by name."""
    return sorted(module_name(p) for package in packages for p in (ROOT / package).rglob("*.py"))


@cache
def families() -> tuple[str, ...]:
    """The model family modules of the registry's `FAMILIES` table (model name -> module)."""
    for node in ast.parse(module_file(REGISTRY).read_text(encoding="utf-8")).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "FAMILIES":
            return tuple(sorted(set(ast.literal_eval(node.value).values())))
    raise LookupError(f"no FAMILIES table in {module_file(REGISTRY)}")


def stage_files(stage: str) -> list[str]:
    """The files `python -m pipelines <stage>` loads. A stage that builds models loads the
    families of its competition's models by name: those (and what they import) are its `zoo`
    dep, the digest `zoo` writes of exactly them; `zoo` itself reads every family."""
    modules = closure([f"{PACKAGE}.__main__", f"{PACKAGE}.stages.{stage}"])
    if stage == ZOO:
        modules |= closure(list(families()))
    return GRAPH.files(modules)


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
