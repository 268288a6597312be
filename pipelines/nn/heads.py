"""What a net's raw outputs mean for a task: the loss to train on, the outputs to report.

`Head` turns logits into the registry contract's outputs (P(class 1) for binary, class
probabilities for multiclass, values on the target's own scale for regression) and gives the
hard-label loss. `Distill` wraps a head into the knowledge-distillation loss used when a
teacher's soft targets are given. Both are plain callables the loop takes as `loss_fn`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipelines.core.context import KD_ALPHA, KD_TEMPERATURE


def n_outputs(task: str, n_classes: int) -> int:
    """Logits a net needs: binary uses 2-class softmax (one code path with multiclass and KD)."""
    return 1 if task == "regression" else max(2, n_classes)


def members_apart(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, k, outputs) logits of k members -> (n * k, outputs), each row's targets repeated k
    times; (n, outputs) logits are returned as they are."""
    if logits.dim() != 3:
        return logits, targets
    k = logits.shape[1]
    return logits.flatten(0, 1), targets.repeat_interleave(k, dim=0)


class Head(nn.Module):
    """Logits -> contract outputs, and the hard loss (cross-entropy or MSE).

    A regression net predicts the standardised target; the head holds the target's mean and
    std (fitted on the training rows) so the loss sees unit scale whatever the units, and the
    outputs come back on the original scale (also inside an exported ONNX graph).
    `label_smoothing` (classification only) mixes that much of a uniform distribution into
    the cross-entropy's one-hot targets, as `F.cross_entropy` does.
    """

    def __init__(self, task: str, mean: float = 0.0, std: float = 1.0, label_smoothing: float = 0.0):
        super().__init__()
        if task not in ("binary", "multiclass", "regression"):
            raise ValueError(f"unknown task {task!r}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if label_smoothing and task == "regression":
            raise ValueError("label_smoothing applies to classification, not regression")
        self.task, self.label_smoothing = task, float(label_smoothing)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    @classmethod
    def fit(cls, task: str, y, label_smoothing: float = 0.0) -> Head:
        if task != "regression":
            return cls(task, label_smoothing=label_smoothing)
        y = np.asarray(y, dtype=np.float64)
        return cls(task, y.mean(), max(float(y.std()), 1e-8))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """(n, outputs) logits, or (n, k, outputs) from a net of k members (TabM): the outputs
        are then the mean of the members' outputs (probabilities, or values)."""
        if self.task == "regression":
            values = logits[..., 0] * self.std + self.mean
            return values.mean(dim=1) if logits.dim() == 3 else values
        p = logits.softmax(dim=-1)
        if logits.dim() == 3:
            p = p.mean(dim=1)
        return p[:, 1] if self.task == "binary" else p

    def standardise(self, y: torch.Tensor) -> torch.Tensor:
        return (y.float() - self.mean) / self.std

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean loss; a net of k members (logits (n, k, outputs)) trains each member on
        the whole batch, as TabM does."""
        logits, y = members_apart(logits, y)
        if self.task == "regression":
            return F.mse_loss(logits[:, 0].float(), self.standardise(y))
        return F.cross_entropy(logits.float(), y.long(), label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:  # part of the checkpoint fingerprint
        smooth = f", label_smoothing={self.label_smoothing:g}" if self.label_smoothing else ""
        return f"task={self.task}, mean={self.mean.item():.6g}, std={self.std.item():.6g}{smooth}"


class Distill:
    """Knowledge distillation (Hinton et al. 2015): alpha * soft loss + (1 - alpha) * hard loss.

    Classification: the teacher's probabilities are softened by the temperature T (the same
    as dividing its logits by T) and the student's T-softened distribution is pulled towards
    them with KL(teacher_T || student_T), scaled by T^2 so the soft gradients keep their
    size as T changes. Regression: MSE to the teacher's values (standardised like y).
    """

    def __init__(self, head: Head, temperature: float = KD_TEMPERATURE, alpha: float = KD_ALPHA):
        if temperature <= 0 or not 0 <= alpha <= 1:
            raise ValueError(f"need temperature > 0 and 0 <= alpha <= 1, got {temperature}, {alpha}")
        self.head, self.temperature, self.alpha = head, temperature, alpha

    def __call__(self, logits: torch.Tensor, y: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
        hard = self.head.loss(logits, y)
        logits, soft = members_apart(logits, soft)
        if self.head.task == "regression":
            soft_loss = F.mse_loss(logits[:, 0].float(), self.head.standardise(soft))
        else:
            t = self.temperature
            teacher = torch.stack([1 - soft, soft], dim=1) if soft.dim() == 1 else soft
            target = F.softmax(torch.log(teacher.float().clamp_min(1e-7)) / t, dim=1)
            student = F.log_softmax(logits.float() / t, dim=1)
            soft_loss = F.kl_div(student, target, reduction="batchmean") * t * t
        return self.alpha * soft_loss + (1 - self.alpha) * hard

    def __repr__(self) -> str:  # part of the checkpoint fingerprint
        return f"Distill(T={self.temperature}, alpha={self.alpha})"
