"""The house rules, checked from the source: dvc.yaml's deps cover what each stage imports,
imports run down the layers, and no function or module grows past its size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.dag import REGISTRY, ROOT, derived_deps, families, imports_of, module_file, module_name, stage_files

# bottom to top: a module may import from its own layer and the layers below, never above
LAYERS = [
    ["pipelines.core"],
    ["pipelines.features", "pipelines.nn"],
    ["pipelines.models"],
    ["pipelines.training", "pipelines.sources"],
    ["pipelines.stages"],
    ["pipelines.__main__"],
]
STAGE_HELPERS = {"pipelines.stages.common"}  # the one stage module other stages may import
MAX_FUNCTION_LINES, MAX_MODULE_LINES = 60, 400
LONG_MARK = "# long:"  # on the line above a def (or anywhere in a module): why it must stay longer

MODULES = sorted(module_name(p) for p in (ROOT / "pipelines").rglob("*.py"))
STAGES = list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])


def layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer of tests/test_structure.py")


def dvc_deps(stage: str) -> list[str]:
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["do"]
    return [d for d in spec["deps"] if isinstance(d, str) and d.startswith("pipelines")]


def uncovered(stage: str, deps: list[str]) -> list[str]:
    """The files the stage loads that no dep (a file or a folder) covers."""
    return [f for f in stage_files(stage) if not any(f == d or f.startswith(d + "/") for d in deps)]


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_deps_cover_every_module_the_stage_imports(stage):
    deps = dvc_deps(stage)
    assert not uncovered(stage, deps), f"dvc.yaml {stage}: add {uncovered(stage, deps)} (python -m tests.dag --write)"
    assert sorted(deps) == sorted(derived_deps(stage)), f"dvc.yaml {stage}: run python -m tests.dag --write"


def test_stages_that_build_models_depend_on_every_model_family():
    """The registry imports a family by name (`FAMILIES`), which no import statement shows: the
    stages that import it still list every family, and a family left out of deps is caught."""
    registry = str(module_file(REGISTRY).relative_to(ROOT))
    builders = [s for s in STAGES if registry in stage_files(s)]
    assert {"tune", "train", "distill"} <= set(builders)
    files = [str(module_file(m).relative_to(ROOT)) for m in families()]
    assert "pipelines/models/torch_zoo.py" in files and "pipelines/models/gbdt.py" in files
    for stage in builders:
        assert set(files) <= set(stage_files(stage)), stage
        deps = [f for f in stage_files(stage) if f != "pipelines/models/torch_zoo.py"]  # files, not folders
        assert uncovered(stage, deps) == ["pipelines/models/torch_zoo.py"]


def test_no_module_reads_signatures():
    """What a model takes and can do is declared on its registry entry, never read back from
    signatures (`inspect`)."""
    found = []
    for path in sorted((ROOT / "pipelines").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                bad = any(a.name.split(".")[0] == "inspect" for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                bad = (node.module or "").split(".")[0] == "inspect"
            elif isinstance(node, ast.Call):
                func = node.func
                bad = getattr(func, "id", getattr(func, "attr", None)) in ("signature", "Signature")
            else:
                bad = isinstance(node, ast.Attribute) and node.attr == "__signature__"
            if bad:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"reflection on signatures: {found}"


@pytest.mark.parametrize("module", MODULES)
def test_imports_run_down_the_layers(module):
    for imported in imports_of(module):
        assert layer(imported) <= layer(module), f"{module} imports {imported}, a higher layer"
        if module.startswith("pipelines.stages.") and imported.startswith("pipelines.stages."):
            assert imported in STAGE_HELPERS | {module}, f"stage {module} imports stage {imported}"


def test_no_import_cycles():
    def visit(module, path):
        assert module not in path, "import cycle: " + " -> ".join([*path[path.index(module) :], module])
        for imported in imports_of(module):
            visit(imported, [*path, module])

    for module in MODULES:
        visit(module, [])


def _long_functions(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - first + 1
            if length > MAX_FUNCTION_LINES and not lines[first - 2].strip().startswith(LONG_MARK):
                yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)"


def test_functions_and_modules_stay_small():
    too_long = []
    for path in sorted((ROOT / "pipelines").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        n = len(text.splitlines())
        if n > MAX_MODULE_LINES and LONG_MARK not in text:
            too_long.append(f"{path.relative_to(ROOT)} ({n} lines)")
        too_long.extend(_long_functions(path))
    assert not too_long, "over the size rule (split, or say why above it with '# long: ...'): " + ", ".join(too_long)


def test_readme_draws_the_dag_dvc_draws():
    """README's Architecture picture is `dvc dag --md ensemble@titanic`, not a memory of it."""
    import shutil
    import subprocess
    import sys

    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or "dvc"
    drawn = subprocess.run(
        [dvc, "dag", "--md", "ensemble@titanic"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert drawn.stdout.strip() in (ROOT / "README.md").read_text(), "README's DAG differs: paste `dvc dag --md`"


MAX_PARAMETERS = 8  # model factories (pipelines/models/) carry hyperparameters, as sklearn's and timm's do


def test_functions_take_few_parameters():
    """Many parameters are many modes: an options object (`CVOptions`) or the plan says it once."""
    many = []
    for path in sorted((ROOT / "pipelines").rglob("*.py")):
        if path.relative_to(ROOT).parts[1] == "models":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs) if p.arg not in ("self", "cls")]
                if len(names) > MAX_PARAMETERS:
                    many.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({len(names)})")
    assert not many, f"more than {MAX_PARAMETERS} parameters: " + ", ".join(many)
