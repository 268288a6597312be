"""Exponential moving average of a net's weights and buffers: timm's `ModelEmaV3`, our warmup.

The loop evaluates (and keeps) the EMA weights instead of the raw ones. It imports this
module only when a fit uses EMA: importing timm takes seconds.
"""

from __future__ import annotations

from timm.utils.model_ema import ModelEmaV3


class EMA(ModelEmaV3):
    """`update(net, step)` after optimizer step `step` (1, 2, ...); float tensors are averaged,
    integer buffers (BatchNorm's batch counter) copied."""

    def get_decay(self, step: int) -> float:
        # warms up as (1 + step) / (10 + step) so that short fits are not dominated by the random
        # initial weights; timm's own warmup (or none) scored worse on our small fits
        return min(self.decay, (1 + step) / (10 + step))
