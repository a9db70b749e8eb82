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
    critic: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    condition: torch.Tensor | None,
    scaler: torch.amp.GradScaler | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty ``E[(||grad_x D(x, c)||_2 - 1)^2]`` at random interpolates (Gulrajani et al., NeurIPS 2017).

    The interpolate ``x = e * real + (1 - e) * fake`` (one ``e ~ U(0, 1)`` per sample) is scored *with the
    same condition* the critic sees for real and fake pairs. (The StepwisePretraining code pairs the
    interpolate with itself, evaluating the penalty on inputs the critic never sees; we do not.) The
    critic's value of a sample is the mean of its patch map.

    With an enabled float16 ``scaler`` it follows PyTorch's AMP recipe for gradient penalties
    (https://pytorch.org/docs/stable/notes/amp_examples.html#gradient-penalty): the gradient is taken of the
    *scaled* scores (small float16 gradients would otherwise flush to zero), unscaled by ``1 / scale`` before
    the norm, and the norm is computed in the caller's autocast context (the trainer's), in float32. A scale
    that overflows gives a non-finite penalty; the scaler then skips that critic step and lowers its scale.

    Args:
        critic: ``critic(candidate, condition)`` returning a patch score map ``(B, 1, *S')``.
        real: the restoration targets.
        fake: the restorations (detached here).
        condition: the critic's condition for both, or ``None``.
        scaler: the critic's gradient scaler (``None`` or disabled: no scaling).

    Shapes:
        ``real``, ``fake``: ``(B, C, *S)``; ``condition``: ``(B, C_c, *S)`` or ``None``. Returns a scalar.
    """
    eps = torch.rand((real.shape[0],) + (1,) * (real.ndim - 1), device=real.device, dtype=real.dtype)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = _per_sample_score(critic(mixed, condition)).sum()
    scaled = scaler is not None and scaler.is_enabled()
    (grad,) = torch.autograd.grad(scaler.scale(scores) if scaled else scores, mixed, create_graph=True)
    if scaled:
        grad = grad * (1.0 / scaler.get_scale())
    return ((grad.float().flatten(1).norm(2, dim=1) - 1) ** 2).mean()


class WassersteinGPLoss:
    """Wasserstein critic loss with gradient penalty (the United framework's adversarial loss).

    Critic: ``mean D(fake) - mean D(real) + gp_weight * GP``. Generator: ``-mean D(fake)``.

    Args:
        gp_weight: penalty weight lambda (10 for Rotation/Jigsaw/Rubik, 100 for TransVW in the official code).
        grad_scaler: the critic's float16 gradient scaler, for the penalty's AMP recipe (see
            :func:`gradient_penalty`); :class:`~common.engines.UnitedTrainer` sets it when it scales gradients.
    """

    def __init__(self, gp_weight: float = 10.0, grad_scaler: torch.amp.GradScaler | None = None) -> None:
        if gp_weight < 0:
            raise ValueError(f"gp_weight must be non-negative, got {gp_weight}.")
        self.gp_weight = gp_weight
        self.grad_scaler = grad_scaler

    def critic_loss(
        self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        score_real = critic(real, condition).mean()
        score_fake = critic(fake.detach(), condition).mean()
        loss = score_fake - score_real
        logs = {"critic_real": score_real.item(), "critic_fake": score_fake.item()}
        if self.gp_weight:
            penalty = gradient_penalty(critic, real, fake, condition, self.grad_scaler)
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
