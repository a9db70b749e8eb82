"""Projection heads and predictors of contrastive and bootstrap methods: small MLPs on the pooled bottleneck."""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Pool
from torch import nn

__all__ = ["MLP", "ProjectionHead"]


class MLP(nn.Sequential):
    """``Linear -> [BatchNorm1d] -> ReLU -> Linear``: a two-layer perceptron on vectors.

    * MoCo v2's head (Chen et al., "Improved baselines with momentum contrastive learning", 2020): "a 2-layer MLP
      head (hidden layer 2048-d, with ReLU)", no normalisation.
    * BYOL's projector and predictor (Grill et al., NeurIPS 2020, section 3.3): "a linear layer with output size
      4096 followed by batch normalization, rectified linear units, and a final linear layer with output dimension
      256".
    * PCRL's head: 512 -> 128 -> ReLU -> 128.

    Args:
        in_features: input size.
        hidden_features: hidden width.
        out_features: output size.
        batch_norm: BatchNorm1d after the hidden layer (BYOL) or not (MoCo v2, PCRL).

    Shapes:
        ``(B, in_features) -> (B, out_features)``; with ``batch_norm`` training needs ``B > 1``.
    """

    def __init__(self, in_features: int, hidden_features: int, out_features: int, batch_norm: bool = False) -> None:
        if min(in_features, hidden_features, out_features) < 1:
            raise ValueError(f"MLP sizes must be positive, got {in_features}, {hidden_features}, {out_features}.")
        layers: list[nn.Module] = [nn.Linear(in_features, hidden_features)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_features))
        layers += [nn.ReLU(inplace=True), nn.Linear(hidden_features, out_features)]
        super().__init__(*layers)
        self.in_features, self.out_features = in_features, out_features


class ProjectionHead(nn.Module):
    """Global average pooling of the bottleneck, then an :class:`MLP`: the ``head`` of MoCo, BYOL and PCRL models.

    The pooled 512-d Genesis bottleneck plays the role of the ResNet's 2048-d pooled feature in the 2D papers.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the bottleneck.
        hidden_features: hidden width (MoCo v2 3D: 512; BYOL: 4096 at paper scale; PCRL: 128).
        out_features: embedding size (MoCo: 128; BYOL: 256; PCRL: 128).
        batch_norm: see :class:`MLP`.

    Shapes:
        ``(B, in_channels, *S) -> (B, out_features)``.
    """

    def __init__(
        self, spatial_dims: int = 3, in_channels: int = 512, hidden_features: int = 512, out_features: int = 128, batch_norm: bool = False
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        self.spatial_dims = spatial_dims
        self.pool = nn.Sequential(Pool[Pool.ADAPTIVEAVG, spatial_dims](1), nn.Flatten(1))
        self.mlp = MLP(in_channels, hidden_features, out_features, batch_norm)
        self.out_features = out_features

    def forward(self, bottleneck: torch.Tensor) -> torch.Tensor:
        if bottleneck.ndim != self.spatial_dims + 2:
            raise ValueError(f"ProjectionHead expects (B, C, *{self.spatial_dims} spatial dims), got {tuple(bottleneck.shape)}.")
        return self.mlp(self.pool(bottleneck))
