"""BYOL's online network in the United framework: encoder, projector (the ``head``), predictor and decoder."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from common.networks.united_model import UnitedModel

__all__ = ["BYOLModel"]


class BYOLModel(UnitedModel):
    """A :class:`UnitedModel` with BYOL's predictor beside the head (Grill et al., NeurIPS 2020).

    The ``head`` is the projector (pooled bottleneck -> ``z``) and ``predictor`` maps ``z`` to ``p``. The target network
    (task state, :class:`~common.tasks.BYOLTask`) is an EMA copy of ``encoder`` and ``head`` only: BYOL's asymmetry is
    that the target has no predictor. The predictor is trainable, so it belongs to the model (the optimizer and
    DistributedDataParallel see it) and is exported as ``predictor.pt``; ``encoder.pt`` stays a plain encoder.

    Args:
        encoder: returns a list of feature maps, the last one being the bottleneck.
        head: the projector, e.g. :class:`~common.networks.ProjectionHead`.
        predictor: e.g. :class:`~common.networks.MLP` (``out_features`` of the head in and out).
        decoder: the restorative decoder (stage 2 on), or ``None``.

    Shapes:
        ``forward(image (B, C, *S))`` returns ``features``, ``head`` (``z``, ``(B, D)``), ``prediction`` (``p``,
        ``(B, D)``) and, with a decoder, ``reconstruction`` ``(B, C_out, *S)``.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, predictor: nn.Module, decoder: nn.Module | None = None) -> None:
        super().__init__(encoder, head, decoder)
        if head is None or predictor is None:
            raise ValueError("BYOLModel needs a head (the projector) and a predictor.")
        self.predictor = predictor

    def components(self) -> dict[str, nn.Module]:
        return {**super().components(), "predictor": self.predictor}

    def forward(self, image: torch.Tensor) -> dict[str, Any]:
        out = super().forward(image)
        out["prediction"] = self.predictor(out["head"])
        return out
