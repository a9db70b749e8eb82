"""The adversary encoder: a conditional patch critic (United framework, Guo et al., MedIA 2024)."""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from torch import nn

from common.networks.encoder import GenesisEncoder

__all__ = ["ConditionalPatchCritic"]


class ConditionalPatchCritic(nn.Module):
    """Encoder of the Genesis plan on ``[candidate || condition]`` followed by a 1x1(x1) conv to one channel.

    The candidate is either the clean target ("real") or the restoration ("fake"); the condition is the
    network input the restoration was made from, so the critic judges "is this a faithful restoration of
    *this* input" rather than "does this look like anatomy". The output is an unbounded patch score map
    at 1/8 of the input size (4 levels), suitable for a Wasserstein critic or, with a least-squares loss,
    a PatchGAN discriminator. ``condition_channels=0`` gives an unconditional critic (DiRA-2D style).

    Args:
        spatial_dims: 2 or 3.
        candidate_channels: channels of the real/fake candidate.
        condition_channels: channels of the condition (0 for an unconditional critic).
        base_channels: encoder width.
        num_levels: encoder levels.
        norm: MONAI norm spec. Instance norm is the default because a gradient penalty on a batch-normed
            critic couples the samples of a batch; ``"batch"`` reproduces the Keras StepwisePretraining critic.

    Shapes:
        ``candidate (B, candidate_channels, *S)``, ``condition (B, condition_channels, *S)`` ->
        ``(B, 1, *S / 2 ** (num_levels - 1))``.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        candidate_channels: int = 1,
        condition_channels: int = 1,
        base_channels: int = 32,
        num_levels: int = 4,
        norm: str | tuple | None = "instance",
    ) -> None:
        super().__init__()
        if candidate_channels < 1 or condition_channels < 0:
            raise ValueError(
                f"need candidate_channels >= 1 and condition_channels >= 0, got {candidate_channels}, {condition_channels}."
            )
        self.condition_channels = condition_channels
        self.encoder = GenesisEncoder(
            spatial_dims, candidate_channels + condition_channels, base_channels, num_levels, norm=norm
        )
        self.score = Convolution(spatial_dims, self.encoder.out_channels[-1], 1, kernel_size=1, conv_only=True)

    def forward(self, candidate: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        if self.condition_channels:
            if condition is None:
                raise ValueError("this critic is conditional: pass the network input as `condition`.")
            if condition.shape[0] != candidate.shape[0] or condition.shape[2:] != candidate.shape[2:]:
                raise ValueError(
                    f"candidate {tuple(candidate.shape)} and condition {tuple(condition.shape)} must share batch and spatial size."
                )
            candidate = torch.cat([candidate, condition], dim=1)
        return self.score(self.encoder(candidate)[-1])
