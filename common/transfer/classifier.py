"""Classification network for transfer: a pretrained encoder component plus a new head on its deepest feature map."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["EncoderClassifier", "deepest_feature"]


def deepest_feature(features: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The deepest feature map of an encoder's output: the last item of a list/tuple, or the tensor itself."""
    if isinstance(features, (list, tuple)):
        if not features:
            raise ValueError("the encoder returned an empty feature list.")
        return features[-1]
    return features


class EncoderClassifier(nn.Module):
    """``head(deepest_feature(encoder(image)))`` with an optional frozen encoder (linear probing).

    A frozen encoder has no gradients and stays in eval mode even when the classifier is put in train mode
    (MONAI's trainer calls ``network.train()`` every iteration), so its batch-norm statistics are those of
    pretraining: a linear probe measures the pretrained features as they are.

    With ``dense_output`` the logits are broadcast over the input's spatial size, so a sliding-window inferer
    turns patch classification of a whole volume into a (coarse) label map on the volume's grid.

    Args:
        encoder: returns a feature map or a list of them (deepest last), e.g. a
            :class:`~common.networks.GenesisEncoder` or SwinUNETR's ``swinViT``.
        head: maps the deepest feature map ``(B, C, *S')`` to logits ``(B, K)``, e.g.
            :class:`~common.networks.ClassificationHead`.
        freeze_encoder: train the head only.
        dense_output: return ``(B, K, *S)`` instead of ``(B, K)``.

    Shapes:
        ``(B, C_in, *S) -> (B, K)``, or ``(B, K, *S)`` with ``dense_output``.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, freeze_encoder: bool = False, dense_output: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.freeze_encoder = freeze_encoder
        self.dense_output = dense_output
        if freeze_encoder:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True) -> EncoderClassifier:
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.head(deepest_feature(self.encoder(image)))
        if not self.dense_output:
            return logits
        spatial = image.shape[2:]
        # a real tensor, not a stride-0 view: the sliding-window inferer weights its windows in place
        return logits.reshape(*logits.shape, *([1] * len(spatial))).expand(-1, -1, *spatial).contiguous()
