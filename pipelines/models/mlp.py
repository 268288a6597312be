"""The tabular torch models: `mlp` (with an Optuna search space) and `student_mlp` (small, for
distillation), over `MLP`, fitted by `torch_adapter.TabularTorchModel`."""

from __future__ import annotations

from functools import partial

from torch import nn

from pipelines.models.torch_adapter import TabularTorchModel
from pipelines.models.torch_recipe import DISTILL, torch_model


class MLP(nn.Sequential):
    """[Linear -> BatchNorm -> SiLU -> Dropout] x layers -> Linear."""

    def __init__(self, input_shape, n_out: int, *, hidden: int = 256, layers: int = 2, dropout: float = 0.1):
        blocks, width = [], input_shape[0]
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.SiLU(), nn.Dropout(dropout)]
            width = hidden
        super().__init__(*blocks, nn.Linear(width, n_out))


def mlp_space(trial) -> dict:
    return {
        "hidden": trial.suggest_categorical("hidden", [64, 128, 256, 512]),
        "layers": trial.suggest_int("layers", 1, 3),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
    }


@torch_model("mlp", TabularTorchModel, net=dict(hidden=256, layers=2, dropout=0.1), search_space=mlp_space)
def mlp(*, hidden, layers, dropout):
    return partial(MLP, hidden=hidden, layers=layers, dropout=dropout)


@torch_model(
    "student_mlp", TabularTorchModel, net=dict(hidden=64, layers=1, dropout=0.0), takes=DISTILL,
    accepts_soft_targets=True, lr=3e-3, patience=8,
)  # fmt: skip
def student_mlp(*, hidden, layers, dropout):
    return partial(MLP, hidden=hidden, layers=layers, dropout=dropout)
