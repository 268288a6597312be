"""The house rules, checked from the source: dvc.yaml's deps cover what each stage imports,
imports run down the layers with no cycle anywhere in the repo, paths are spelled once
(`pipelines/core/paths.py`, which dvc.yaml agrees with), and no function or module grows past
its size."""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import pytest
import yaml

from pipelines.core.paths import Paths
from tests.dag import (
    REGISTRY,
    ROOT,
    derived_deps,
    families,
    imports_of,
    module_file,
    project_modules,
    stage_files,
)

# bottom to top: a module may import from its own layer and the layers below, never above
LAYERS = [
    ["pipelines.core"],
    ["pipelines.features", "pipelines.nn"],
    ["pipelines.models"],
    ["pipelines.training", "pipelines.sources"],  # sources: the inputs (Kaggle, embedded, files)
    ["pipelines.outputs"],  # readers of what the stages write (its decoders come from sources)
    ["pipelines.stages", "pipelines.commands"],  # the DVC stages; the commands beside them
    ["pipelines.__main__"],
]
RUNNABLE = ("pipelines.stages.", "pipelines.commands.")
STAGE_HELPERS = {"pipelines.stages.common"}  # the one stage module other stages and commands may import
MAX_FUNCTION_LINES, MAX_MODULE_LINES = 60, 400
LONG_MARK = "# long:"  # on the line above a def (or anywhere in a module): why it must stay longer

MODULES = project_modules(["pipelines"])
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = list(DVC["stages"])


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


def test_model_code_reaches_the_stages_through_the_zoo_digest():
    """The registry imports a family by name (`FAMILIES`), which no import statement shows: the
    `zoo` stage depends on every family (a family left out of its deps is caught), and the
    stages that build models depend on its per-competition digest instead."""
    files = [str(module_file(m).relative_to(ROOT)) for m in families()]
    assert "pipelines/models/torch_zoo.py" in files and "pipelines/models/gbdt.py" in files
    assert set(files) <= set(stage_files("zoo"))
    deps = [f for f in stage_files("zoo") if f != "pipelines/models/torch_zoo.py"]  # files, not folders
    assert uncovered("zoo", deps) == ["pipelines/models/torch_zoo.py"]
    registry = str(module_file(REGISTRY).relative_to(ROOT))
    for stage in [s for s in STAGES if registry in stage_files(s) and s != "zoo"]:
        assert "data/zoo/${key}" in DVC["stages"][stage]["do"]["deps"], stage
    assert {"tune", "train", "distill"} <= {s for s in STAGES if "data/zoo/${key}" in DVC["stages"][s]["do"]["deps"]}


def test_zoo_digest_holds_only_the_code_of_the_competitions_models():
    from pipelines.core.config import load_params
    from pipelines.stages.zoo import code_digest, competition_models

    params = load_params(ROOT / "params.yaml")
    tabular = code_digest(competition_models(params, "titanic"))
    image = code_digest(competition_models(params, "digit-recognizer"))
    assert "pipelines/models/gbdt.py" in tabular and "pipelines/models/mlp.py" in tabular
    assert "pipelines/models/nets.py" not in tabular and "pipelines/models/torch_zoo.py" not in tabular
    assert "pipelines/models/nets.py" in image and "pipelines/models/gbdt.py" not in image
    assert (
        image["pipelines/models/nets.py"]
        == hashlib.sha256((ROOT / "pipelines/models/nets.py").read_bytes()).hexdigest()
    )


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
        if module.startswith(RUNNABLE) and imported.startswith(RUNNABLE):  # a stage or command
            assert imported in STAGE_HELPERS | {module}, f"{module} imports {imported} (only {STAGE_HELPERS})"


def test_no_import_cycles():
    """Not in pipelines/, benchmarks/ or tests/ (function-level imports count too)."""
    acyclic: set[str] = set()  # modules from which every import path was followed to its end

    def visit(module, path):
        assert module not in path, "import cycle: " + " -> ".join([*path[path.index(module) :], module])
        if module in acyclic:
            return
        for imported in sorted(imports_of(module)):
            visit(imported, [*path, module])
        acyclic.add(module)

    for module in project_modules():
        visit(module, [])


# a path argument in a stage's cmd: the Paths attribute it must equal (--out: the stage's own,
# --cache: the stage's cache)
FLAG_PATHS = {
    "--raw": "raw", "--clean": "clean", "--tuned": "tune", "--train": "train", "--distill": "distill", "--logs": "logs",
}  # fmt: skip
STAGE_OUT = {"download": "raw", "clean": "clean", "zoo": "zoo", "tune": "tune", "train": "train", "distill": "distill",
             "ensemble": "submissions"}  # fmt: skip


def _declared(spec: dict, *sections: str) -> list[str]:
    """The paths a dvc.yaml stage (or the file's top level) lists under `sections`."""
    return [next(iter(e)) if isinstance(e, dict) else e for s in sections for e in spec.get(s, [])]


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_yaml_paths_are_those_of_paths(stage):
    """What dvc.yaml hands a stage, and what it declares, is what `Paths` says (the commands
    beside the stages default to the same folders)."""
    name = "house-prices"  # any competition: dvc.yaml's ${key}
    spec, paths = DVC["stages"][stage]["do"], Paths(name)
    own = getattr(paths, STAGE_OUT[stage])
    words = spec["cmd"].replace("${key}", name).split()
    flags = {w: Path(v) for w, v in zip(words, words[1:], strict=False) if w.startswith("--")}
    assert flags.get("--out") == own, f"dvc.yaml {stage}: --out {flags.get('--out')}, Paths: {own}"
    for flag, value in flags.items():
        attr = {**FLAG_PATHS, "--out": STAGE_OUT[stage], "--cache": f"{stage}_cache"}.get(flag)
        assert attr, f"dvc.yaml {stage}: {flag} is a path Paths does not know (add it to FLAG_PATHS)"
        want = getattr(paths, attr)
        assert value == want, f"dvc.yaml {stage}: {flag} {value}, Paths(...).{attr}: {want}"
    for out in _declared(spec, "outs", "metrics", "plots"):
        path = Path(out.replace("${key}", name))
        inside = [own, *([paths.logs] if "--logs" in flags else [])]  # timings and the plan: the stage's log
        assert {path, *path.parents} & set(inside), f"dvc.yaml {stage}: {out} is not in Paths(...).{STAGE_OUT[stage]}"
    folders = {getattr(paths, a) for a in STAGE_OUT.values()}
    for dep in [d for d in _declared(spec, "deps") if not d.startswith("pipelines")]:
        path = Path(dep.replace("${key}", name))
        assert folders & {path, *path.parents}, f"dvc.yaml {stage}: dep {dep} is in no folder of Paths"


def test_dvc_yaml_top_level_plots_are_in_paths():
    """`leaderboard` writes cv_vs_public.csv into Paths(name).submissions."""
    names = yaml.safe_load((ROOT / "params.yaml").read_text())["competitions"]
    expected = {str(Paths(n).submissions / "cv_vs_public.csv") for n in names}
    stray = set(_declared(DVC, "plots")) - expected
    assert not stray, f"dvc.yaml plots: {sorted(stray)} are not Paths(<competition>).submissions / cv_vs_public.csv"


# a project path: data/... or submissions/... at the start of a string or of a word in it
# (not an archive member such as "mnist/data/mnist.pkl.gz"), or the bare folder name
PROJECT_PATH = re.compile(r"(?<![\w./-])(data|submissions)/")
TOP_FOLDERS = ("data", "submissions")


def _docstrings(tree: ast.AST) -> set[int]:
    owners = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, owners) and node.body and isinstance(node.body[0], ast.Expr)
    }


def test_paths_are_spelled_in_core_paths_only():
    """Code takes a `data/` or `submissions/` path from `Paths` (or from dvc.yaml through its
    arguments); docstrings may describe them."""
    spelled = []
    for path in sorted((ROOT / "pipelines").rglob("*.py")):
        if path == ROOT / "pipelines/core/paths.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if PROJECT_PATH.search(node.value) or node.value.strip("/") in TOP_FOLDERS:
                    spelled.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert not spelled, "a project path outside pipelines/core/paths.py (use Paths): " + ", ".join(spelled)


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
