"""Pretext classification: predict which transformation was applied (Rotation, Jigsaw, TransVW classes...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from common.tasks.base import DiscriminativeTask

__all__ = ["PretextClassificationTask"]


class PretextClassificationTask(DiscriminativeTask):
    """Cross-entropy between the head's logits and the pretext class index in the batch.

    Args:
        label_key: batch key of the class indices, shape ``(B,)`` or ``(B, 1)``.
        label_smoothing: passed to :func:`torch.nn.functional.cross_entropy`.

    Shapes:
        ``outputs["head"]``: ``(B, num_classes)`` logits; returns a scalar loss and ``{"accuracy": float}``.
    """

    def __init__(self, label_key: str = "label", label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_key = label_key
        self.label_smoothing = label_smoothing

    def forward(
        self, outputs: Mapping[str, Any], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if "head" not in outputs:
            raise KeyError("PretextClassificationTask needs a head: the model has none.")
        if self.label_key not in batch:
            raise KeyError(f"batch has no {self.label_key!r} key (keys: {sorted(batch)}); check the proxy transform.")
        logits = outputs["head"]
        labels = torch.as_tensor(batch[self.label_key], device=logits.device).long().reshape(-1)
        if labels.shape[0] != logits.shape[0]:
            raise ValueError(f"{labels.shape[0]} labels for {logits.shape[0]} logits.")
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        accuracy = (logits.argmax(dim=1) == labels).float().mean().item()
        return loss, {"accuracy": accuracy}
