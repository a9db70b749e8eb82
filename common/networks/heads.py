"""Discriminative heads attached to the encoder bottleneck."""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Pool
from torch import nn

__all__ = ["ClassificationHead"]


class ClassificationHead(nn.Module):
    """Pretext-classification head: optional conv unit, global average pooling, then an MLP.

    With ``conv_channels=512, hidden_features=1024`` this is the ``conv`` head of the United/StepwisePretraining
    code (Conv 3 + BN + ReLU -> GAP -> Dense 1024 ReLU -> Dense C); with ``conv_channels=None,
    hidden_features=None`` it is the TransVW stage-1 head (GAP -> Dense C). It returns logits: the
    softmax belongs to the loss.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the bottleneck.
        num_classes: number of pretext classes.
        conv_channels: channels of the leading conv unit, ``None`` to skip it.
        hidden_features: width of the hidden linear layer, ``None`` for a single linear layer.
        norm: MONAI norm spec of the conv unit.
        dropout: dropout probability before the last linear layer.

    Shapes:
        input ``(B, in_channels, *S)``; output ``(B, num_classes)``.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 512,
        num_classes: int = 8,
        conv_channels: int | None = 512,
        hidden_features: int | None = 1024,
        norm: str | tuple | None = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if in_channels < 1 or num_classes < 2:
            raise ValueError(f"need in_channels >= 1 and num_classes >= 2, got {in_channels}, {num_classes}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        channels = in_channels
        if conv_channels:
            layers.append(Convolution(spatial_dims, channels, conv_channels, kernel_size=3, norm=norm, act="relu"))
            channels = conv_channels
        layers += [Pool[Pool.ADAPTIVEAVG, spatial_dims](1), nn.Flatten(1)]
        if hidden_features:
            layers += [nn.Linear(channels, hidden_features), nn.ReLU(inplace=True)]
            channels = hidden_features
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(channels, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, bottleneck: torch.Tensor) -> torch.Tensor:
        return self.layers(bottleneck)
