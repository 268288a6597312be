"""Stage `zoo`: a digest of the model code a competition's models run.

    python -m pipelines zoo <name> --out data/zoo/<name>

The registry imports a model family by name, so which code a competition runs depends on
its models: Titanic's never touches the image nets. This stage lists the models the
competition may build (its modality's `train.models` or its own list, the tuned ones and its
students), takes their families' modules and everything those import, and writes
`code.json`: each file with its sha256. `tune`, `train` and `distill` depend on that file
instead of on every family, so editing `nets.py` re-runs this stage everywhere (a second)
but the stages after it only where the digest changed: image and text competitions.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipelines.core.imports import ImportGraph
from pipelines.core.io import atomic_dir, write_json
from pipelines.models.registry import FAMILIES, get_entry, serves
from pipelines.models.selection import check_models, models_for

ROOT = Path(__file__).resolve().parents[2]  # the folder holding the `pipelines` package


def add_arguments(parser) -> None:
    parser.add_argument("--out", type=Path, required=True)


def competition_models(params, name: str) -> list[str]:
    """Every model the competition may build: trained (before the size rules), tuned, students."""
    spec = params.competition(name)
    students = params.distill.student[spec.modality]
    students = [students] if isinstance(students, str) else students
    chosen = set(models_for(params, name)) | set(students)
    tuned = [m for m in params.tune.models if serves(get_entry(m).modality, spec.modality)]
    return sorted(chosen | set(tuned))


def code_digest(models: list[str]) -> dict[str, str]:
    """Each source file the models' families load (relative path -> sha256)."""
    graph = ImportGraph(ROOT, ("pipelines",))
    families = {FAMILIES.get(m) or get_entry(m).family for m in models}
    files = graph.files(graph.closure(sorted(families)))
    return {f: hashlib.sha256((ROOT / f).read_bytes()).hexdigest() for f in files}


def main(args, params) -> None:
    check_models(params, args.params)
    models = competition_models(params, args.name)
    code = code_digest(models)
    with atomic_dir(args.out) as tmp:
        write_json(tmp / "code.json", {"models": models, "code": code})
    print(f"{args.name}: {len(models)} models, {len(code)} source files -> {args.out}")
