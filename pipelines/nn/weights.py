"""Starting weights for a torch net: a local state dict (`.pt`/`.pth`/`.bin`/`.safetensors`),
loaded safely (safetensors, or `torch.load(weights_only=True)`: no code runs). Nothing is
downloaded."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipelines.core.errors import PipelineError


def load_weights(net: nn.Module, path) -> None:
    """Load the tensors of a local state dict whose names and shapes match (a classifier for
    another number of classes is left as initialised, which is what fine-tuning wants)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"weights file {path} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state.get(key), dict):
            state = state[key]
    own = net.state_dict()
    best = {}
    for prefix in ("", *(f"{name}." for name, _ in net.named_children())):  # e.g. vit. for HF files
        found = {
            prefix + k: v
            for k, v in state.items()
            if own.get(prefix + k) is not None and own[prefix + k].shape == v.shape
        }
        best = found if len(found) > len(best) else best
    if not any(v.dim() > 0 for v in best.values()):  # scalar counters match anything
        raise PipelineError(f"weights file {path}: no tensor matches {type(net).__name__} (names or shapes differ)")
    net.load_state_dict(best, strict=False)
