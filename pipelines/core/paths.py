"""Where a competition's files live, written once: `Paths(name).clean` is `data/clean/<name>`.

`dvc.yaml` hands each stage its paths; a command beside the stages (report, submit, export,
...) takes its defaults from here, and `tests/test_structure.py` checks that `dvc.yaml` spells
the same paths and that no other module under `pipelines/` spells a `data/` or
`submissions/` path. Paths are relative to the repository root (where `dvc repro` runs).
`Paths("<name>")` gives the placeholders help texts show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DATA, SUBMISSIONS = Path("data"), Path("submissions")


@dataclass(frozen=True)
class Paths:
    """Every per-competition folder of the project."""

    name: str

    @property
    def raw(self) -> Path:  # download: Kaggle layout
        return DATA / "raw" / self.name

    @property
    def clean(self) -> Path:  # clean: typed features, target, folds, drift.json
        return DATA / "clean" / self.name

    @property
    def zoo(self) -> Path:  # zoo: code.json, a digest of the model code the competition runs
        return DATA / "zoo" / self.name

    @property
    def tune(self) -> Path:  # tune: the study, best_params.json
        return DATA / "tune" / self.name

    @property
    def train(self) -> Path:  # train: per model OOF and test predictions
        return DATA / "train" / self.name

    @property
    def train_cache(self) -> Path:  # train's finished folds and checkpoints
        return DATA / "cache" / self.name / "train"

    @property
    def distill(self) -> Path:  # distill: the student
        return DATA / "distill" / self.name

    @property
    def distill_cache(self) -> Path:  # distill's finished folds and checkpoints
        return DATA / "cache" / self.name / "distill"

    @property
    def export(self) -> Path:  # export: the self-contained student that serve runs
        return DATA / "export" / self.name

    @property
    def logs(self) -> Path:  # run logs (timings)
        return DATA / "logs" / self.name

    @property
    def submissions(self) -> Path:  # ensemble: submission.csv, metrics; submit/leaderboard/report
        return SUBMISSIONS / self.name

    def folders(self) -> dict[str, Path]:
        """The stage folders by name, in the order the data flows (for the plan's print-out)."""
        names = ("raw", "clean", "tune", "train", "distill", "submissions", "logs")
        return {n: getattr(self, n) for n in names}
