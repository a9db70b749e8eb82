"""Adversarial losses for the conditional critic: WGAN-GP and least-squares GAN.

Both expose the same two calls, so the trainer does not care which one a bundle picks:
``critic_loss(critic, real, fake, condition)`` and ``generator_loss(critic, fake, condition)``.
"""

from __future__ import annotations

from typing import Protocol

import torch
from monai.losses import PatchAdversarialLoss
from torch import nn

__all__ = ["AdversarialLoss", "WassersteinGPLoss", "LeastSquaresGANLoss", "gradient_penalty"]


class AdversarialLoss(Protocol):
    """What the trainer needs from an adversarial loss."""

    def critic_loss(
        self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, float]]: ...

    def generator_loss(self, critic: nn.Module, fake: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor: ...


def _per_sample_score(scores: torch.Tensor) -> torch.Tensor:
    """Mean of a patch score map per sample: ``(B, 1, *S) -> (B,)``."""
    return scores.flatten(1).mean(dim=1)


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor | None
) -> torch.Tensor:
    """WGAN-GP penalty ``E[(||grad_x D(x, c)||_2 - 1)^2]`` at random interpolates (Gulrajani et al., NeurIPS 2017).

    The interpolate ``x = e * real + (1 - e) * fake`` (one ``e ~ U(0, 1)`` per sample) is scored *with the
    same condition* the critic sees for real and fake pairs. (The StepwisePretraining code pairs the
    interpolate with itself, evaluating the penalty on inputs the critic never sees; we do not.) The
    critic's value of a sample is the mean of its patch map.

    Shapes:
        ``real``, ``fake``: ``(B, C, *S)``; ``condition``: ``(B, C_c, *S)`` or ``None``. Returns a scalar.
    """
    eps = torch.rand((real.shape[0],) + (1,) * (real.ndim - 1), device=real.device, dtype=real.dtype)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = _per_sample_score(critic(mixed, condition))
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


class WassersteinGPLoss:
    """Wasserstein critic loss with gradient penalty (the United framework's adversarial loss).

    Critic: ``mean D(fake) - mean D(real) + gp_weight * GP``. Generator: ``-mean D(fake)``.

    Args:
        gp_weight: penalty weight lambda (10 for Rotation/Jigsaw/Rubik, 100 for TransVW in the official code).
    """

    def __init__(self, gp_weight: float = 10.0) -> None:
        if gp_weight < 0:
            raise ValueError(f"gp_weight must be non-negative, got {gp_weight}.")
        self.gp_weight = gp_weight

    def critic_loss(
        self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        score_real = critic(real, condition).mean()
        score_fake = critic(fake.detach(), condition).mean()
        loss = score_fake - score_real
        logs = {"critic_real": score_real.item(), "critic_fake": score_fake.item()}
        if self.gp_weight:
            penalty = gradient_penalty(critic, real, fake, condition)
            loss = loss + self.gp_weight * penalty
            logs["gradient_penalty"] = penalty.item()
        return loss, logs

    def generator_loss(self, critic: nn.Module, fake: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        return -critic(fake, condition).mean()


class LeastSquaresGANLoss:
    """Least-squares GAN loss on patch scores (Mao et al., ICCV 2017), as used by DiRA's adversary.

    Critic: ``0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2)``; generator: ``mean (D(fake) - 1)^2``.
    Computed with MONAI's :class:`~monai.losses.PatchAdversarialLoss`.
    """

    def __init__(self) -> None:
        self.loss = PatchAdversarialLoss(criterion="least_squares", reduction="mean")

    def critic_loss(
        self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        score_real = critic(real, condition)
        score_fake = critic(fake.detach(), condition)
        loss = 0.5 * (
            self.loss(score_real, target_is_real=True, for_discriminator=True)
            + self.loss(score_fake, target_is_real=False, for_discriminator=True)
        )
        return loss, {"critic_real": score_real.mean().item(), "critic_fake": score_fake.mean().item()}

    def generator_loss(self, critic: nn.Module, fake: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        return self.loss(critic(fake, condition), target_is_real=True, for_discriminator=False)
