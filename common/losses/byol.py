"""BYOL's regression loss: the online prediction of one view against the target projection of the other."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BYOLLoss"]


class BYOLLoss(nn.Module):
    """``2 - 2 cos(p, z')``, symmetrised over the two views (Grill et al., "Bootstrap your own latent", NeurIPS 2020,
    eq. 2), i.e. the mean squared error of the L2-normalised prediction and target projection.

    ``loss = 1/2 * [mean_i(2 - 2 cos(p1_i, z2_i)) + mean_i(2 - 2 cos(p2_i, z1_i))]``: 0 when the predictions point
    along the targets, 2 for orthogonal, 4 for opposite vectors. (The paper sums the two directions; the mean keeps
    the value in [0, 4] whatever the symmetrisation.) The targets are detached: only the online branch learns.

    Shapes:
        ``p1``, ``p2`` (online predictions of views 1 and 2), ``z1``, ``z2`` (target projections of views 1 and 2):
        ``(B, D)``; returns a scalar.
    """

    @staticmethod
    def regression(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``mean_i (2 - 2 cos(prediction_i, target_i))`` with ``target`` detached."""
        if prediction.ndim != 2 or prediction.shape != target.shape:
            raise ValueError(
                f"prediction and target must both be (B, D), got {tuple(prediction.shape)} and {tuple(target.shape)}."
            )
        cosine = F.cosine_similarity(prediction.float(), target.detach().float(), dim=1)
        return (2.0 - 2.0 * cosine).mean()

    def forward(self, p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.regression(p1, z2) + self.regression(p2, z1))
