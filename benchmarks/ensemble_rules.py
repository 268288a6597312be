"""How the ensemble chooses its method, re-scored on kept runs: each rule's held-out score.

    python benchmarks/ensemble_rules.py --kept /work/kept/adult /work/kept/titanic ...

Reads the repos that `tabular_tasks.py --keep DIR`, `titanic_splits.py --keep DIR` and
`pretrained.py --columns pipeline --keep DIR` (text) left (`DIR/<task>-<seed>/repo`,
`DIR/repo<seed>`, `DIR/<task>-<K>-pipeline/repo`), runs the `ensemble` stage again in this process
on their `train` and `distill` outputs with each rule in `RULES` in place of
`training.ensembling.method_choice` (the stage's code otherwise), and scores each submission
on the split's held-out labels, as the benchmark that played it does. The stages before
`ensemble` are not re-run: a rule is judged on exactly the models the default pipeline trained.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import table  # noqa: E402
from benchmarks.pretrained import carve_text  # noqa: E402
from benchmarks.tabular_tasks import TASKS, carve  # noqa: E402
from benchmarks.text_tasks import TASKS as TEXT  # noqa: E402
from benchmarks.titanic_splits import carve as carve_titanic  # noqa: E402
from pipelines.__main__ import main as cli  # noqa: E402
from pipelines.sources.embedded import get_embedded  # noqa: E402
from pipelines.stages import ensemble as stage  # noqa: E402
from pipelines.training import ensembling  # noqa: E402


def best_nested(nested, y, folds, metric, task, rows=None) -> tuple[str, str]:
    """No rule: the best nested cv, however small the margin."""
    scores = {m: metric.on(y, p, task, rows) for m, p in nested.items()}
    best = max(scores, key=lambda m: scores[m] if metric.greater_is_better else -scores[m])
    return best, f"{best}: the best nested cv"


RULES = {
    "1 SE of scores": lambda *a, **k: ensembling.method_choice(*a, **k, paired=False),
    "1 SE of differences": lambda *a, **k: ensembling.method_choice(*a, **k, paired=True),
    "best": best_nested,
}


def runs(kept: Path):
    """(repo, competition name, truth by id, score function) of each split kept under `kept`."""
    for repo in sorted(kept.glob("*-pipeline/repo")):  # pretrained.py (text): <task>-<K>-pipeline/repo
        name, k, _ = repo.parent.name.rsplit("-", 2)
        _, test = carve_text(name, 3000 + int(k))
        spec = TEXT[name]["spec"]
        yield repo, name, test.set_index(spec["id"])[spec["target"]], TEXT[name]["score"]
    for repo in sorted(r for r in kept.glob("*/repo") if not r.parent.name.endswith("-pipeline")):
        name, seed = repo.parent.name.rsplit("-", 1)  # tabular_tasks.py: <task>-<seed>/repo
        _, test, spec = carve(name, int(seed))
        yield repo, name, test.set_index(spec["id"])[spec["target"]], TASKS[name]["score"]
    for repo in sorted(kept.glob("repo*")):  # titanic_splits.py: repo<seed>
        _, test = carve_titanic(get_embedded("titanic").load(), int(repo.name[4:]))
        yield repo, "split", test.set_index("PassengerId")["Survived"], lambda t, p: float(np.mean(t == p))


def rescore(repo: Path, name: str, truth: pd.Series, score, rule) -> tuple[float, str]:
    """The held-out score and method of the repo's `ensemble` stage run again with `rule`."""
    out = repo / "rules" / name
    argv = ["ensemble", name, "--params", "params.yaml", "--no-progress"]
    argv += ["--raw", f"data/raw/{name}", "--clean", f"data/clean/{name}", "--train", f"data/train/{name}"]
    argv += ["--distill", f"data/distill/{name}", "--out", str(out)]
    stage.method_choice = rule
    try:
        with contextlib.chdir(repo):
            assert cli(argv) == 0
    finally:
        stage.method_choice = ensembling.method_choice
    sub = pd.read_csv(out / "submission.csv").set_index(truth.index.name)
    method = pd.read_json(out / "details.json", typ="series")["ensemble"]["method"]
    return score(truth.to_numpy(), sub.loc[truth.index].iloc[:, 0].to_numpy()), method


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kept", type=Path, nargs="+", required=True)
    args = ap.parse_args()
    rows = []
    for kept in args.kept:
        for repo, name, truth, score in runs(kept):
            row = {"run": f"{kept.name}/{repo.parent.name if repo.name == 'repo' else repo.name}"}
            for label, rule in RULES.items():
                held, method = rescore(repo, name, truth, score, rule)
                row[label] = f"{held:.5f} {method}"
            rows.append(row)
            print(table(rows[-1:]), flush=True)
    print("\n" + table(rows))


if __name__ == "__main__":
    main()
