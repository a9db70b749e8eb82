"""Skip-connected restorative decoder of the Models Genesis U-Net, built from MONAI blocks."""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution, UpSample
from monai.networks.layers.factories import Act
from torch import nn

from common.networks.encoder import double_conv

__all__ = ["GenesisDecoder"]

UPSAMPLE_MODES = ("deconv", "nearest")


class GenesisDecoder(nn.Module):
    """Restorative decoder matching :class:`~common.networks.encoder.GenesisEncoder`.

    Level ``i`` (deepest first) upsamples the deeper map by 2 keeping its channels, concatenates the
    encoder skip of level ``i`` and applies two conv-norm-act units down to ``b * 2 ** (i + 1)``
    channels ([512 up + 256 skip] -> 256 -> 256, ..., [128 + 64] -> 64 -> 64 at paper width), then a
    1x1(x1) convolution maps to ``out_channels`` (Zhou et al., Models Genesis, MedIA 2021).

    Args:
        spatial_dims: 2 or 3.
        out_channels: channels of the restoration (1 for CT/MRI).
        base_channels: must equal the encoder's ``base_channels``.
        num_levels: must equal the encoder's ``num_levels``.
        upsample: ``"deconv"`` (transposed conv, kernel 2 stride 2, as in the PyTorch Genesis code) or
            ``"nearest"`` (nearest-neighbour upsampling, as in the Keras code).
        norm: MONAI norm spec.
        act: MONAI activation spec.
        out_activation: ``"sigmoid"`` for targets in [0, 1] (both intensity presets, CT and MRI, map to
            [0, 1]) or ``None`` for unbounded targets (data normalised outside the presets).

    Shapes:
        input: the encoder's feature list; output ``(B, out_channels, *S)`` at the encoder input size.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        out_channels: int = 1,
        base_channels: int = 32,
        num_levels: int = 4,
        upsample: str = "deconv",
        norm: str | tuple | None = "batch",
        act: str | tuple = "relu",
        out_activation: str | None = "sigmoid",
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if num_levels < 2:
            raise ValueError(f"a decoder needs num_levels >= 2, got {num_levels}.")
        if out_channels < 1 or base_channels < 1:
            raise ValueError(f"out_channels and base_channels must be positive, got {out_channels}, {base_channels}.")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}.")
        self.num_levels = num_levels
        channels = [base_channels * 2 ** (i + 1) for i in range(num_levels)]
        ups, blocks = [], []
        for i in reversed(range(num_levels - 1)):
            deep = channels[i + 1]
            if upsample == "deconv":
                ups.append(UpSample(spatial_dims, deep, deep, scale_factor=2, mode="deconv"))
            else:
                ups.append(
                    UpSample(
                        spatial_dims, deep, deep, scale_factor=2, mode="nontrainable", pre_conv=None,
                        interp_mode="nearest", align_corners=None,
                    )
                )
            blocks.append(double_conv(spatial_dims, deep + channels[i], channels[i], channels[i], norm, act))
        self.ups = nn.ModuleList(ups)
        self.blocks = nn.ModuleList(blocks)
        self.out = Convolution(spatial_dims, channels[0], out_channels, kernel_size=1, conv_only=True)
        self.out_activation = Act[out_activation]() if out_activation else nn.Identity()

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if len(features) != self.num_levels:
            raise ValueError(f"GenesisDecoder expects {self.num_levels} feature maps, got {len(features)}.")
        x = features[-1]
        skip = len(features) - 2  # the skips, deepest first (an index: TorchScript cannot zip a reversed list)
        for up, block in zip(self.ups, self.blocks):
            x = block(torch.cat([up(x), features[skip]], dim=1))
            skip -= 1
        return self.out_activation(self.out(x))
