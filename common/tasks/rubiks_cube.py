"""Rubik's Cube task: permutation cross-entropy + per-branch turn (and mask) flags; one restoration per branch.

Zhuang et al. (MICCAI 2019), Zhu et al. (Rubik's Cube+, MedIA 2020) and the United Rubik's Cube code (Guo et al.,
MedIA 2024): the loss is ``w_order * CE(order) + w_rotation * BCE(turn flags) [+ w_mask * BCE(mask flags)]``
(United weights 1 / 1). The network is a :class:`~common.networks.SiameseOctadModel`; every branch restores the
sub-cube it sees, and the critic judges each branch's restoration next to that branch's input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from common.tasks.base import DiscriminativeTask, Restoration, TaskOutputs

__all__ = ["RubiksCubeTask"]


def _fold(x: torch.Tensor, num_cubes: int) -> torch.Tensor:
    """``(B, n C, *S)`` -> ``(B n, C, *S)``: one sample per branch."""
    if x.shape[1] % num_cubes:
        raise ValueError(f"expected {num_cubes} sub-cubes on dim 1, got shape {tuple(x.shape)}.")
    return x.reshape(x.shape[0] * num_cubes, x.shape[1] // num_cubes, *x.shape[2:])


class RubiksCubeTask(DiscriminativeTask):
    """Permutation classification and per-branch binary flags on the octad head; branch-wise restorations.

    :meth:`run` calls the network once on the octad ``image`` ``(B, n C, *S)``. Its restorations fold the branches
    into the batch: one :class:`Restoration` of ``B n`` candidates ``(B n, C, *S)``, candidate ``b n + i`` being
    branch ``i``'s output, its target the clean sub-cube branch ``i`` sees and its condition branch ``i``'s input, so
    a single-branch critic (``candidate_channels = condition_channels = C``) scores every branch against its own
    input (the mean over the batch is the mean over the branches).

    Args:
        num_cubes: branches per octad.
        label_key: batch key of the permutation index ``(B,)``.
        rotation_key: batch key of the turn flags ``(B, n)``.
        mask_key: batch key of the mask flags ``(B, n)`` (read when the head predicts masks).
        order_weight: weight of the permutation cross-entropy (United: 1).
        rotation_weight: weight of the turn-flag BCE (United: 1).
        mask_weight: weight of the mask-flag BCE.

    Shapes:
        ``outputs["head"]``: ``{"order": (B, P), "rotation": (B, n)[, "mask": (B, n)]}`` logits. Diagnostics:
        ``accuracy`` (permutation), ``rotation_accuracy`` and ``mask_accuracy`` (per flag).
    """

    def __init__(
        self,
        num_cubes: int = 8,
        label_key: str = "label",
        rotation_key: str = "rotation",
        mask_key: str = "mask",
        order_weight: float = 1.0,
        rotation_weight: float = 1.0,
        mask_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if num_cubes < 2:
            raise ValueError(f"num_cubes must be at least 2, got {num_cubes}.")
        if min(order_weight, rotation_weight, mask_weight) < 0:
            raise ValueError(f"loss weights must be non-negative, got {order_weight}, {rotation_weight}, {mask_weight}.")
        self.num_cubes = num_cubes
        self.label_key, self.rotation_key, self.mask_key = label_key, rotation_key, mask_key
        self.weights = {"order": float(order_weight), "rotation": float(rotation_weight), "mask": float(mask_weight)}

    def run(self, network: nn.Module, batch: Mapping[str, torch.Tensor]) -> TaskOutputs:
        image = batch["image"]
        outputs = network(image)
        restorations = []
        if "reconstruction" in outputs:
            if "target" not in batch:
                raise KeyError(f"the network restores, but the batch has no 'target' (keys: {sorted(batch)}).")
            restorations.append(
                Restoration(
                    _fold(outputs["reconstruction"], self.num_cubes),
                    _fold(batch["target"], self.num_cubes),
                    _fold(image, self.num_cubes),
                )
            )
        return TaskOutputs(outputs, restorations)

    def _flags(self, name: str, logits: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, float]:
        key = self.rotation_key if name == "rotation" else self.mask_key
        if key not in batch:
            raise KeyError(f"the head predicts {name} flags but the batch has no {key!r} (keys: {sorted(batch)}).")
        flags = torch.as_tensor(batch[key], device=logits.device).float().reshape(logits.shape)
        loss = F.binary_cross_entropy_with_logits(logits.float(), flags)
        return loss, ((logits > 0) == (flags > 0.5)).float().mean().item()

    def forward(
        self, outputs: Mapping[str, Any], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        head = outputs.get("head")
        if not isinstance(head, Mapping) or "order" not in head:
            raise KeyError("RubiksCubeTask needs the octad head's outputs {'order', 'rotation'[, 'mask']}.")
        if self.label_key not in batch:
            raise KeyError(f"batch has no {self.label_key!r} key (keys: {sorted(batch)}); check the proxy transform.")
        logits = head["order"].float()
        labels = torch.as_tensor(batch[self.label_key], device=logits.device).long().reshape(-1)
        if labels.shape[0] != logits.shape[0]:
            raise ValueError(f"{labels.shape[0]} permutation labels for {logits.shape[0]} octads.")
        loss = self.weights["order"] * F.cross_entropy(logits, labels)
        logs = {"accuracy": (logits.argmax(dim=1) == labels).float().mean().item()}
        for name in ("rotation", "mask"):
            if name in head:
                flag_loss, accuracy = self._flags(name, head[name], batch)
                loss = loss + self.weights[name] * flag_loss
                logs[f"{name}_accuracy"] = accuracy
        return loss, logs
