"""The tabular torch models, fitted by `torch_adapter.TabularTorchModel`: `mlp` (with an Optuna
search space) and `student_mlp` (small, for distillation) over `MLP`, and `tabm` over `TabM`.

TabM (Gorishniy et al., ICLR 2025; PyPI `tabm`) is an MLP that holds k members in one net
(BatchEnsemble: shared weights, per-member scalings): each member trains on every batch and
the prediction is their mean (`nn.heads.Head` reads (n, k, outputs) logits). Kaggle's recent
tabular winners blend it with boosters, as a member that errs unlike them.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
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


class TabM(nn.Module):
    """TabM's members over the preprocessed features: (n, features) -> (n, k, n_out).

    With `bins` (one tensor of edges per column of `numeric`, from `numeric_bins`) those
    columns enter through piecewise-linear embeddings (`rtdl_num_embeddings`, version B: the
    paper's TabM with embeddings), the rest (one-hot categories) as they are. Built from
    `tabm`'s parts rather than `tabm.TabM`, whose forward ONNX cannot export.
    """

    def __init__(
        self, input_shape, n_out: int, *, k: int, width: int, layers: int, dropout: float, arch: str,
        bins: list | None = None, numeric: tuple[int, ...] = (), d_embedding: int = 16,
    ):  # fmt: skip
        super().__init__()
        import tabm
        from rtdl_num_embeddings import PiecewiseLinearEmbeddings

        n_features = input_shape[0]
        numeric = list(numeric) if bins else []
        rest = [i for i in range(n_features) if i not in set(numeric)]
        self.register_buffer("numeric", torch.tensor(numeric, dtype=torch.long), persistent=False)
        self.register_buffer("rest", torch.tensor(rest, dtype=torch.long), persistent=False)
        self.embed = PiecewiseLinearEmbeddings(bins, d_embedding, activation=False, version="B") if numeric else None
        chunks = [d_embedding] * len(numeric) + [1] * len(rest)
        self.ensemble_view = tabm.EnsembleView(k=k)
        self.backbone = tabm.make_tabm_backbone(
            d_in=sum(chunks), n_blocks=layers, d_block=width, dropout=dropout, k=k, arch_type=arch,
            start_scaling_init="normal" if numeric else "random-signs", start_scaling_init_chunks=chunks,
        )  # fmt: skip
        self.output = tabm.LinearEnsemble(width, n_out, k=k)

    def forward(self, x):
        if self.embed is not None:
            x = torch.cat([self.embed(x[:, self.numeric]).flatten(1), x[:, self.rest]], dim=1)
        return self.output(self.backbone(self.ensemble_view(x)))


class TabMTorchModel(TabularTorchModel):
    """`TabularTorchModel` whose net gets the bins of its numeric columns (quantiles of the
    training rows: `numeric_bins`)."""

    def _fit_inputs(self, X, y) -> np.ndarray:
        x = super()._fit_inputs(X, y)
        self.numeric_, self.bins_ = numeric_bins(self.preprocessor_, x)
        return x

    def _net(self, n_out: int) -> nn.Module:
        return self.build(self.input_shape_, n_out, bins=self.bins_, numeric=self.numeric_)


def numeric_bins(preprocessor, x: np.ndarray, n_bins: int = 48) -> tuple[tuple[int, ...], list | None]:
    """The preprocessed columns that are numbers (numeric and target-encoded key columns,
    those with at least 3 distinct values) and their quantile bins' edges (at most `n_bins`)."""
    from rtdl_num_embeddings import compute_bins

    ranges = preprocessor.output_indices_
    columns = [i for part in ("num", "key") if part in ranges for i in range(x.shape[1])[ranges[part]]]
    columns = tuple(i for i in columns if len(np.unique(x[:: max(1, len(x) // 5000), i])) >= 3)
    if not columns:
        return (), None
    sample = x[:: max(1, len(x) // 100_000), list(columns)]
    return columns, compute_bins(torch.as_tensor(sample), n_bins=min(n_bins, len(sample) - 1))


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


def tabm_space(trial) -> dict:
    return {
        "width": trial.suggest_categorical("width", [128, 256, 512]),
        "layers": trial.suggest_int("layers", 1, 4),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "lr": trial.suggest_float("lr", 3e-4, 5e-3, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True),
    }


# The paper's defaults (k 32, lr 2e-3, weight decay 3e-4, batch 256, piecewise-linear
# embeddings: TabM-mini with 2 blocks), narrower (256 wide, not 512: 3x faster per epoch on 2
# cores). Not a default member: on Adult it scored a point below the boosters and took no
# weight in their blend (benchmarks/README.md, "TabM")
@torch_model(
    "tabm", TabMTorchModel, net=dict(k=32, width=256, layers=2, dropout=0.1, arch="tabm-mini"),
    search_space=tabm_space, lr=2e-3, weight_decay=3e-4, batch_size=256,
)  # fmt: skip
def tabm(*, k, width, layers, dropout, arch):
    return partial(TabM, k=k, width=width, layers=layers, dropout=dropout, arch=arch)
