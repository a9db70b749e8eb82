"""WGAN-GP and LSGAN losses against hand-computed values, with critics whose gradients are known."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from common.losses import LeastSquaresGANLoss, WassersteinGPLoss, gradient_penalty


class ScaledCritic(nn.Module):
    """Score map ``a * candidate``: per-sample score = a * mean(x); gradient a / N per voxel."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, candidate: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.a * candidate


class ConditionWeightedCritic(nn.Module):
    """Score map ``condition * candidate``: the gradient w.r.t. the candidate is condition / N."""

    def forward(self, candidate: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return condition * candidate


def test_gradient_penalty_hand_computed() -> None:
    # 2x2 images (N = 4): gradient of a * mean(x) is a / 4 per voxel, norm a / 2; a = 4 -> norm 2 -> (2 - 1)^2 = 1
    real, fake = torch.ones(3, 1, 2, 2), torch.zeros(3, 1, 2, 2)
    assert gradient_penalty(ScaledCritic(4.0), real, fake, None).item() == pytest.approx(1.0)
    assert gradient_penalty(ScaledCritic(2.0), real, fake, None).item() == pytest.approx(0.0)


def test_gradient_penalty_uses_the_real_condition() -> None:
    # condition 2 everywhere: gradient 2 / 4 per voxel, norm 1 -> penalty 0. Pairing the interpolate with itself
    # (the official code's bug) would give a gradient depending on the interpolate instead.
    real, fake = torch.rand(4, 1, 2, 2), torch.rand(4, 1, 2, 2)
    condition = torch.full((4, 1, 2, 2), 2.0)
    assert gradient_penalty(ConditionWeightedCritic(), real, fake, condition).item() == pytest.approx(0.0, abs=1e-6)
    condition = torch.full((4, 1, 2, 2), 6.0)  # norm 3 -> (3 - 1)^2 = 4
    assert gradient_penalty(ConditionWeightedCritic(), real, fake, condition).item() == pytest.approx(4.0)


def test_gradient_penalty_is_differentiable_in_critic_parameters() -> None:
    critic = ScaledCritic(4.0)
    gradient_penalty(critic, torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2), None).backward()
    # d/da (a/2 - 1)^2 = (a/2 - 1) = 1 at a = 4
    assert critic.a.grad.item() == pytest.approx(1.0)


def test_wasserstein_critic_and_generator_loss() -> None:
    loss = WassersteinGPLoss(gp_weight=10.0)
    real, fake = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    value, logs = loss.critic_loss(ScaledCritic(4.0), real, fake, None)
    # mean D(fake) - mean D(real) + 10 * GP = 0 - 4 + 10 * 1
    assert value.item() == pytest.approx(6.0)
    assert logs == pytest.approx({"critic_real": 4.0, "critic_fake": 0.0, "gradient_penalty": 1.0})
    assert loss.generator_loss(ScaledCritic(4.0), real, None).item() == pytest.approx(-4.0)
    no_gp, logs = WassersteinGPLoss(gp_weight=0.0).critic_loss(ScaledCritic(4.0), real, fake, None)
    assert no_gp.item() == pytest.approx(-4.0) and "gradient_penalty" not in logs


def test_wasserstein_critic_loss_does_not_reach_the_generator() -> None:
    fake = torch.rand(2, 1, 2, 2, requires_grad=True)
    value, _ = WassersteinGPLoss().critic_loss(ScaledCritic(1.0), torch.rand(2, 1, 2, 2), fake, None)
    value.backward()
    assert fake.grad is None


def test_least_squares_hand_computed() -> None:
    loss = LeastSquaresGANLoss()
    identity = ScaledCritic(1.0)
    real, fake = torch.full((2, 1, 2, 2), 0.5), torch.full((2, 1, 2, 2), 0.25)
    value, logs = loss.critic_loss(identity, real, fake, None)
    # 0.5 * ((0.5 - 1)^2 + 0.25^2) = 0.5 * (0.25 + 0.0625)
    assert value.item() == pytest.approx(0.15625)
    assert logs == pytest.approx({"critic_real": 0.5, "critic_fake": 0.25})
    assert loss.generator_loss(identity, fake, None).item() == pytest.approx((0.25 - 1) ** 2)


def test_negative_gp_weight_raises() -> None:
    with pytest.raises(ValueError):
        WassersteinGPLoss(gp_weight=-1.0)
