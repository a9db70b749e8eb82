"""The generator of the United framework: encoder, head and (optionally) decoder under stable names."""

from __future__ import annotations

import torch
from torch import nn

from common.networks.restorer import Restorer

__all__ = ["UnitedModel"]


class UnitedModel(nn.Module):
    """Discriminative encoder + head, plus the skip-connected restorative decoder from stage 2 on.

    A stage that does not restore builds no decoder (``decoder=None``), so stage 1 pays only for the
    encoder (about one seventh of the Genesis U-Net's compute). The adversary is not part of this module:
    it has its own optimizer and lives beside it in the trainer.

    Methods whose network has another shape subclass it (a documented plug-in point): e.g. a siamese model that
    runs the encoder on every sub-cube, or a decoder conditioned on an augmentation vector. A subclass keeps the
    component names, so ``encoder.pt`` stays a plain encoder state dict; it lists extra trainable parts in
    :meth:`components` (each is exported as ``<name>.pt``) and returns its image-to-image module from
    :meth:`restorer` (exported as ``model.pt``, what inference serves).

    Args:
        encoder: returns a list of feature maps, the last one being the bottleneck.
        head: method-specific head applied to the bottleneck, or ``None``.
        decoder: restorative decoder taking the feature list, or ``None``.

    Shapes:
        ``forward(image (B, C, *S))`` returns a dict with ``features`` (list of tensors), ``head``
        (head output, e.g. ``(B, num_classes)`` logits) when a head exists, and ``reconstruction``
        ``(B, C_out, *S)`` when a decoder exists.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module | None = None, decoder: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.decoder = decoder

    def components(self) -> dict[str, nn.Module]:
        """The sub-modules that exist in this stage, by component name."""
        return {name: module for name in ("encoder", "head", "decoder") if (module := getattr(self, name)) is not None}

    def restorer(self) -> nn.Module | None:
        """The image-to-image module exported as ``model.pt`` (:class:`Restorer` of encoder and decoder), or ``None``
        when this stage has no decoder. It shares the model's modules (no copy)."""
        return Restorer(self.encoder, self.decoder) if self.decoder is not None else None

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        features = self.encoder(image)
        out: dict[str, torch.Tensor | list[torch.Tensor]] = {"features": features}
        if self.head is not None:
            out["head"] = self.head(features[-1])
        if self.decoder is not None:
            out["reconstruction"] = self.decoder(features)
        return out
