"""Encoder + decoder as one image-to-image module, for inference, TorchScript export and transfer."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Restorer"]


class Restorer(nn.Module):
    """``decoder(encoder(image))``: the restorative path of a :class:`~common.networks.UnitedModel`.

    Its state dict keys (``encoder.*``, ``decoder.*``) are those of the United model without the head, so
    a stage's ``model.pt`` or its ``encoder.pt`` + ``decoder.pt`` load into it.

    Args:
        encoder: e.g. :class:`~common.networks.GenesisEncoder`.
        decoder: e.g. :class:`~common.networks.GenesisDecoder`.

    Shapes:
        ``(B, C, *S) -> (B, C_out, *S)``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(image))
