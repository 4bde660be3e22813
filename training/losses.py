"""The AdaIN paper's training loss (content at relu4_1 against the AdaIN target + channel-statistics style loss)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adain_core.adain import calc_mean_std
from adain_core.networks import TAPS

__all__ = ["LossWeights", "content_loss", "style_loss_per_layer", "AdaINLoss"]


@dataclass
class LossWeights:
    """Weights of the loss terms: ``total = content_weight·L_c + λ·Σ_l layer[l]·L_s,l``."""

    style_weight: float = 10.0
    layers: dict[str, float] = field(default_factory=lambda: {t: 1.0 for t in TAPS})
    content_weight: float = 1.0


def content_loss(out_feat: Tensor, target: Tensor) -> Tensor:
    """MSE between relu4_1 of the decoded image ``(B, 512, h, w)`` and the AdaIN target ``t`` (same shape)."""
    return F.mse_loss(out_feat.float(), target.float())


def style_loss_per_layer(out_feats: dict[str, Tensor], style_feats: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per tap: MSE of channel means + MSE of channel stds between decoded image and style features."""
    losses = {}
    for tap, out in out_feats.items():
        om, osd = calc_mean_std(out)
        sm, ssd = calc_mean_std(style_feats[tap])
        losses[tap] = F.mse_loss(om, sm) + F.mse_loss(osd, ssd)
    return losses


class AdaINLoss(nn.Module):
    """The paper's loss as a module with its weights as configuration.

    ``forward(out_feats, target, style_feats)`` returns ``(total, parts)`` where ``parts`` holds the detached,
    *weighted* terms (``content``, ``style``, ``style/<tap>``) as floats-in-tensors for logging. With
    ``style_feats=None`` only the content term is used (the reconstruction warm-up).
    """

    def __init__(self, weights: LossWeights) -> None:
        super().__init__()
        self.weights = weights

    def forward(
        self, out_feats: dict[str, Tensor], target: Tensor, style_feats: dict[str, Tensor] | None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        w = self.weights
        lc = w.content_weight * content_loss(out_feats["relu4_1"], target)
        parts = {"content": lc.detach()}
        if style_feats is None:
            return lc, parts
        per = style_loss_per_layer({t: out_feats[t] for t in w.layers}, style_feats)
        ls = torch.zeros((), device=lc.device)
        for tap, value in per.items():
            term = w.layers[tap] * value
            parts[f"style/{tap}"] = term.detach()
            ls = ls + term
        parts["style"] = ls.detach()
        return lc + w.style_weight * ls, parts

    def extra_repr(self) -> str:
        w = self.weights
        return f"style_weight={w.style_weight}, layers={w.layers}, content_weight={w.content_weight}"
