"""The gradient penalty follows PyTorch's AMP recipe with a float16 scaler (CPU GradScaler, so it runs in CI)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from common.losses import WassersteinGPLoss, gradient_penalty

SHAPE = (2, 1, 4, 4, 4)  # N = 64 voxels per sample


class _RecordGrad(torch.autograd.Function):
    """Identity that records the gradient flowing back into the critic's output."""

    seen: list[torch.Tensor] = []

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        _RecordGrad.seen.append(grad.detach().clone())
        return grad


class SpyCritic(nn.Module):
    """Score map ``a * candidate``: per-sample gradient a / N per voxel, norm a / sqrt(N); records its output's gradient."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, candidate: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return _RecordGrad.apply(self.a * candidate)


def test_penalty_takes_the_gradient_of_the_scaled_scores_and_unscales_it() -> None:
    real, fake = torch.rand(SHAPE), torch.rand(SHAPE)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    _RecordGrad.seen.clear()
    # a = 16: gradient norm 16 / sqrt(64) = 2 per sample, penalty (2 - 1)^2 = 1 whatever the scale
    penalty = gradient_penalty(SpyCritic(16.0), real, fake, None, scaler)
    assert penalty.item() == pytest.approx(1.0, rel=1e-6)  # unscaled before the norm: (2048 - 1)^2 otherwise
    # the inner gradient was taken of the scaled scores: d(scale * sum of per-sample means)/d(score map) = scale / N
    assert torch.allclose(_RecordGrad.seen[0], torch.full(SHAPE, 2.0**10 / 64))
    _RecordGrad.seen.clear()
    assert gradient_penalty(SpyCritic(16.0), real, fake, None).item() == pytest.approx(1.0, rel=1e-6)
    assert torch.allclose(_RecordGrad.seen[0], torch.full(SHAPE, 1.0 / 64))  # no scaler: unscaled


def test_a_disabled_scaler_is_ignored() -> None:
    real, fake = torch.rand(SHAPE), torch.rand(SHAPE)
    _RecordGrad.seen.clear()
    penalty = gradient_penalty(SpyCritic(8.0), real, fake, None, torch.amp.GradScaler("cpu", enabled=False))
    assert penalty.item() == pytest.approx(0.0, abs=1e-10)  # norm 8 / 8 = 1
    assert torch.allclose(_RecordGrad.seen[0], torch.full(SHAPE, 1.0 / 64))


def test_wgan_gp_loss_passes_its_scaler_and_computes_the_norm_in_float32_under_autocast() -> None:
    critic = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv3d(2, 1, 3, padding=1))
    real, fake = torch.rand(SHAPE), torch.rand(SHAPE)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    loss = WassersteinGPLoss(10.0, grad_scaler=scaler)
    wrapped = lambda x, c=None: critic(x)  # noqa: E731
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.float16):
        scaled_total, scaled_logs = loss.critic_loss(wrapped, real, fake, None)
        torch.manual_seed(0)
        plain_total, plain_logs = WassersteinGPLoss(10.0).critic_loss(wrapped, real, fake, None)
    assert scaled_total.dtype == torch.float32 and torch.isfinite(scaled_total)
    # same interpolates (same seed): scaling then unscaling changes the penalty only by float16 rounding
    assert scaled_logs["gradient_penalty"] == pytest.approx(plain_logs["gradient_penalty"], rel=2e-2, abs=1e-3)
    # the penalty is differentiable w.r.t. the critic's weights (create_graph through the scaled gradient)
    scaler.scale(scaled_total).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in critic.parameters())
