"""Projection heads and predictors: shapes in 2D and 3D, the BatchNorm option, invalid arguments."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from common.networks import MLP, ProjectionHead


@pytest.mark.parametrize("spatial_dims,shape", [(3, (2, 16, 4, 4, 2)), (2, (3, 16, 5, 5))])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_shapes(spatial_dims: int, shape: tuple, batch_norm: bool) -> None:
    head = ProjectionHead(spatial_dims, in_channels=16, hidden_features=32, out_features=8, batch_norm=batch_norm)
    assert head(torch.randn(shape)).shape == (shape[0], 8)
    assert head.out_features == 8
    assert any(isinstance(m, nn.BatchNorm1d) for m in head.modules()) == batch_norm


def test_the_head_pools_then_projects() -> None:
    head = ProjectionHead(3, in_channels=4, hidden_features=6, out_features=3).eval()
    x = torch.randn(2, 4, 3, 3, 3)
    torch.testing.assert_close(head(x), head.mlp(x.mean(dim=(2, 3, 4))))
    mlp = MLP(4, 6, 3)  # MoCo v2: Linear -> ReLU -> Linear
    assert [type(m) for m in mlp] == [nn.Linear, nn.ReLU, nn.Linear]


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        ProjectionHead(spatial_dims=1)
    with pytest.raises(ValueError):
        MLP(4, 0, 3)
    with pytest.raises(ValueError, match="expects"):
        ProjectionHead(3, in_channels=4)(torch.randn(2, 4, 3, 3))
