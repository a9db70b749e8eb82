"""The United model on MONAI's SwinUNETR: ``swinViT`` is the encoder, its convolutional blocks the decoder."""

from __future__ import annotations

from typing import Any

import torch
from monai.networks.nets import SwinUNETR
from monai.networks.nets.swin_unetr import SwinTransformer
from torch import nn

from common.networks.swin import SwinUNETRDecoder, assemble_swin_unetr, check_swin_input
from common.networks.united_model import UnitedModel

__all__ = ["SwinUnitedModel"]


class SwinUnitedModel(UnitedModel):
    """Swin UNETR in the United framework: encoder, head and (from stage 2) decoder of one SwinUNETR.

    * ``encoder``: MONAI's ``SwinTransformer`` (:func:`~common.networks.swin.swin_vit`), i.e. ``SwinUNETR.swinViT``,
      so ``encoder.pt`` loads strictly into ``SwinUNETR(...).swinViT``;
    * ``head``: e.g. :class:`~common.networks.SwinPretextHead` on the last hidden state;
    * ``decoder``: :class:`~common.networks.swin.SwinUNETRDecoder` (``encoder1-4``, ``encoder10``, ``decoder5-1``,
      ``out``), or ``None``: stage 1 builds and runs no decoder block (unused parameters would also make
      DistributedDataParallel fail).

    :meth:`restorer` is a plain ``monai.networks.nets.SwinUNETR`` sharing these modules, so ``model.pt`` is a
    SwinUNETR state dict (``swinViT.*`` from the encoder, the other keys from the decoder).

    Args:
        encoder: the Swin transformer.
        head: the discriminative head, or ``None``.
        decoder: the decoder blocks, or ``None``.
        normalize: layer-normalise the hidden states (SwinUNETR's ``normalize``, default ``True``).

    Shapes:
        ``forward(image (B, C, *S))`` -> ``{"features": [5 hidden states], "head": head output,
        "reconstruction": (B, C_out, *S)}`` (``head`` and ``reconstruction`` when those components exist); every
        spatial size a multiple of ``patch_size ** 5`` (32).
    """

    def __init__(
        self,
        encoder: SwinTransformer,
        head: nn.Module | None = None,
        decoder: SwinUNETRDecoder | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__(encoder, head, decoder)
        if not isinstance(encoder, SwinTransformer):
            raise TypeError(f"SwinUnitedModel's encoder must be MONAI's SwinTransformer, got {type(encoder).__name__}.")
        if decoder is not None and not isinstance(decoder, SwinUNETRDecoder):
            raise TypeError(f"SwinUnitedModel's decoder must be a SwinUNETRDecoder, got {type(decoder).__name__}.")
        self.normalize = normalize
        self.patch_size = int(encoder.patch_size[0])
        self._register_load_state_dict_pre_hook(self._accept_swin_unetr_keys)

    def _accept_swin_unetr_keys(self, state_dict: dict[str, torch.Tensor], prefix: str, *_: Any) -> None:
        """Read ``model.pt`` (a plain SwinUNETR state dict: ``swinViT.*`` and the decoder blocks at the root).

        MONAI Label starts training from ``model.pt`` with ``CheckpointLoader(load_dict={"model": network},
        strict=False)``; without this mapping no tensor would land and training would silently start from scratch.
        """
        blocks = tuple(f"{prefix}{name}." for name, _ in self.decoder.named_children()) if self.decoder is not None else ()
        for key in list(state_dict):
            if key.startswith(f"{prefix}swinViT."):
                state_dict[f"{prefix}encoder.{key[len(prefix) + len('swinViT.'):]}"] = state_dict.pop(key)
            elif blocks and key.startswith(blocks):
                state_dict[f"{prefix}decoder.{key[len(prefix):]}"] = state_dict.pop(key)

    def restorer(self) -> SwinUNETR | None:
        """A plain ``SwinUNETR`` made of this model's encoder and decoder (shared), or ``None`` in stage 1."""
        if self.decoder is None:
            return None
        return assemble_swin_unetr(self.encoder, self.decoder, self.normalize)

    def forward(self, image: torch.Tensor) -> dict[str, Any]:
        if not torch.jit.is_tracing():
            check_swin_input(image.shape[2:], self.patch_size, decoder=self.decoder is not None and self.training)
        hidden_states = self.encoder(image, self.normalize)
        out: dict[str, Any] = {"features": hidden_states}
        if self.head is not None:
            out["head"] = self.head(hidden_states[-1])
        if self.decoder is not None:
            out["reconstruction"] = self.decoder(image, hidden_states)
        return out
