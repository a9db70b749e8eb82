"""Models Genesis U-Net encoder built from MONAI blocks.

The channel plan follows Zhou et al., "Models Genesis", MedIA 2021 (and the United framework of
Guo et al., MedIA 2024, which reuses it): level ``i`` applies two 3x3(x3) convolutions, each followed by
batch normalisation and ReLU, going ``in -> b * 2**i -> b * 2**(i + 1)``, with 2x max-pooling between
levels. With the paper width ``b = 32`` and four levels the plan is 1->32->64, 64->64->128,
128->128->256, 256->256->512 and the bottleneck has 512 channels at 1/8 of the input resolution.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Pool
from torch import nn

__all__ = ["GenesisEncoder", "double_conv", "check_divisible"]


def double_conv(
    spatial_dims: int, in_channels: int, mid_channels: int, out_channels: int, norm: str | tuple | None, act: str | tuple
) -> nn.Sequential:
    """Two ``conv 3 -> norm -> act`` units, the building block of every Genesis level."""
    return nn.Sequential(
        Convolution(spatial_dims, in_channels, mid_channels, kernel_size=3, norm=norm, act=act),
        Convolution(spatial_dims, mid_channels, out_channels, kernel_size=3, norm=norm, act=act),
    )


def check_divisible(shape: list[int], factor: int, what: str) -> None:
    """Raise a ``ValueError`` naming ``what`` when a spatial shape is not divisible by ``factor``.

    Written for TorchScript too (``forward`` calls it): a plain loop over a ``list[int]``, no tuple conversion.
    """
    for size in shape:
        if size % factor != 0:
            raise ValueError(f"{what}: spatial shape {list(shape)} must be divisible by {factor} in every dimension.")


class GenesisEncoder(nn.Module):
    """Discriminative encoder of the Models Genesis 3D U-Net (also usable in 2D).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels (1 for CT/MRI).
        base_channels: width ``b`` of the first convolution (32 in the papers; 4-16 for CPU tests).
        num_levels: number of resolution levels (4 in the papers; 3 poolings).
        norm: MONAI norm spec (``"batch"``, ``"instance"``, ``("group", {"num_groups": 8})``, ``None``).
        act: MONAI activation spec.

    Shapes:
        input ``(B, in_channels, *S)`` with every ``S_d`` divisible by ``2 ** (num_levels - 1)``;
        output: a list of ``num_levels`` feature maps, level ``i`` of shape
        ``(B, base_channels * 2 ** (i + 1), *S / 2 ** i)``. The last item is the bottleneck.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        base_channels: int = 32,
        num_levels: int = 4,
        norm: str | tuple | None = "batch",
        act: str | tuple = "relu",
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if in_channels < 1 or base_channels < 1:
            raise ValueError(f"in_channels and base_channels must be positive, got {in_channels}, {base_channels}.")
        if num_levels < 1:
            raise ValueError(f"num_levels must be at least 1, got {num_levels}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.num_levels = num_levels
        self.out_channels: list[int] = [base_channels * 2 ** (i + 1) for i in range(num_levels)]
        levels = []
        channels_in = in_channels
        for i, channels_out in enumerate(self.out_channels):
            levels.append(double_conv(spatial_dims, channels_in, base_channels * 2**i, channels_out, norm, act))
            channels_in = channels_out
        self.levels = nn.ModuleList(levels)
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2)

    @property
    def downsample_factor(self) -> int:
        """Ratio between the input size and the bottleneck size."""
        return 1 << (self.num_levels - 1)  # an int in TorchScript too (2 ** n is a float there)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"GenesisEncoder expects (B, {self.in_channels}, *{self.spatial_dims} spatial dims), got {list(x.shape)}."
            )
        check_divisible(x.shape[2:], self.downsample_factor, "GenesisEncoder input")
        features = []
        for i, level in enumerate(self.levels):
            if i > 0:
                x = self.pool(x)
            x = level(x)
            features.append(x)
        return features
