"""ConditionalPatchCritic: patch output grid, conditioning, invalid arguments."""

from __future__ import annotations

import pytest
import torch

from common.networks import ConditionalPatchCritic


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("num_levels", [2, 4])
@pytest.mark.parametrize("condition_channels", [0, 1, 2])
def test_patch_score_shape(spatial_dims: int, num_levels: int, condition_channels: int) -> None:
    size = (16, 8, 16)[:spatial_dims]
    critic = ConditionalPatchCritic(spatial_dims, 1, condition_channels, base_channels=2, num_levels=num_levels)
    condition = torch.rand(2, condition_channels, *size) if condition_channels else None
    scores = critic(torch.rand(2, 1, *size), condition)
    factor = 2 ** (num_levels - 1)
    assert scores.shape == (2, 1, *[s // factor for s in size])


def test_paper_critic_grid_and_size() -> None:
    # methods-spec section 2.4: 8x8x8 scores for 64^3 inputs, 8x8x4 for 64x64x32; the encoder has ~7.03 M parameters
    critic = ConditionalPatchCritic(norm="batch")
    assert critic(torch.rand(2, 1, 64, 64, 32), torch.rand(2, 1, 64, 64, 32)).shape == (2, 1, 8, 8, 4)
    assert round(sum(p.numel() for p in critic.encoder.parameters()) / 1e6, 2) == 7.03


def test_scores_depend_on_condition() -> None:
    critic = ConditionalPatchCritic(3, 1, 1, base_channels=2, num_levels=2).eval()
    x = torch.rand(1, 1, 8, 8, 8)
    assert not torch.allclose(critic(x, torch.zeros_like(x)), critic(x, torch.ones_like(x)))


def test_invalid_inputs() -> None:
    critic = ConditionalPatchCritic(3, 1, 1, base_channels=2, num_levels=2)
    with pytest.raises(ValueError, match="conditional"):
        critic(torch.rand(1, 1, 8, 8, 8))
    with pytest.raises(ValueError, match="share"):
        critic(torch.rand(1, 1, 8, 8, 8), torch.rand(1, 1, 8, 8, 4))
    with pytest.raises(ValueError):
        ConditionalPatchCritic(candidate_channels=0)
    with pytest.raises(ValueError):
        ConditionalPatchCritic(condition_channels=-1)
