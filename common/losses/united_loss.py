"""The combined United loss ``L = w_dis * L_dis + w_res * L_res + w_adv * L_adv`` (Guo et al., MedIA 2024)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["UnitedLoss", "TERMS", "needs_adversary", "needs_decoder"]

#: Names of the three generator terms, in the order of the framework's stages.
TERMS = ("dis", "res", "adv")


def needs_decoder(w_res: float, w_adv: float) -> bool:
    """Whether a stage builds the restorative decoder: when it restores (``w_res > 0``) or is judged (``w_adv > 0``).

    This is the one place that rule lives: the bundle configs (``decoder_def: _disabled_``) and the objective's model
    check both call it.
    """
    return float(w_res) > 0 or float(w_adv) > 0


def needs_adversary(w_adv: float) -> bool:
    """Whether a stage builds the adversary encoder (critic): when the adversarial term is active."""
    return float(w_adv) > 0


class UnitedLoss(nn.Module):
    """Weighted sum of the discriminative, restorative and adversarial terms.

    A term whose weight is zero is *inactive*: it need not be computed and must not be passed, which is how
    stage 1 (``w_res = w_adv = 0``) skips the decoder and the adversary entirely. Stages differ only by these
    weights, never by code paths.

    Args:
        w_dis: weight of the discriminative (pretext / contrastive) term.
        w_res: weight of the restorative term.
        w_adv: weight of the generator's adversarial term.

    Example:
        >>> loss = UnitedLoss(w_dis=1.0, w_res=100.0)
        >>> loss({"dis": torch.tensor(2.0), "res": torch.tensor(0.01)})
        tensor(3.)
    """

    def __init__(self, w_dis: float = 1.0, w_res: float = 0.0, w_adv: float = 0.0) -> None:
        super().__init__()
        weights = {"dis": float(w_dis), "res": float(w_res), "adv": float(w_adv)}
        negative = {f"w_{k}": v for k, v in weights.items() if v < 0}
        if negative:
            raise ValueError(f"United loss weights must be non-negative, got {negative}.")
        if not any(weights.values()):
            raise ValueError("at least one of w_dis, w_res, w_adv must be positive.")
        self.weights = weights

    @property
    def active(self) -> tuple[str, ...]:
        """Names of the terms with a non-zero weight."""
        return tuple(k for k in TERMS if self.weights[k] > 0)

    def forward(self, terms: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Combine the per-term losses.

        Args:
            terms: scalar loss per active term name (``dis``, ``res``, ``adv``).

        Returns:
            The weighted sum, a scalar tensor.
        """
        missing = [k for k in self.active if k not in terms]
        unexpected = [k for k in terms if k not in self.active]
        if missing or unexpected:
            raise KeyError(f"UnitedLoss active terms are {self.active}; missing {missing}, inactive or unknown {unexpected}.")
        return sum(self.weights[k] * terms[k] for k in self.active)  # type: ignore[return-value]
