"""Swin UNETR pretraining: rotation prediction and contrastive learning on two views (Tang et al., CVPR 2022)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from common.losses.contrastive import NTXentLoss
from common.tasks.base import DiscriminativeTask, Restoration, TaskOutputs
from common.tasks.retrieval import top1_retrieval
from common.transforms.swin_views import VIEW_KEYS

__all__ = ["SwinPretextTask"]


class SwinPretextTask(DiscriminativeTask):
    """Rotation cross-entropy plus NT-Xent of two views; each view's decoder output restores its clean crop.

    The batch comes from :class:`~common.transforms.RandSwinViewsd`: two views of every crop, each rotated by its
    own quarter-turn and corrupted (``image`` / ``view2``), with the rotation indices (``label`` / ``label2``) and
    the clean rotated crops (``target`` / ``target2``).

    * :meth:`run` puts both views through the (possibly DistributedDataParallel-wrapped) network in **one** call,
      concatenated along the batch: SwinUNETR normalises per sample (layer and instance norm), so this equals two
      calls and costs one; every parameter takes part, so DDP needs no ``find_unused_parameters``. From stage 2 on
      it returns one :class:`~common.tasks.Restoration` per view: the reconstruction of the corrupted view against
      its clean rotated crop, conditioned on the corrupted view (the critic's pair).
    * :meth:`forward`: ``rotation_weight * CE(rotation logits of both views) + contrastive_weight * NT-Xent(z1, z2)``
      with temperature 0.5 (the original weights 1 and 1; the restoration term is the trainer's ``w_res``), as
      :class:`~common.losses.NTXentLoss`. In training the projections of every rank are gathered, so the negatives
      are the global batch and the DDP-averaged gradient is that of one process on the concatenated batch; in
      validation each rank uses its own (ranks need not validate in step).

    Diagnostics (logged as ``dis_<name>``): ``accuracy`` (rotation, chance 1/4), ``rotation_loss``,
    ``contrastive_loss`` and ``retrieval`` (:func:`~common.tasks.top1_retrieval`: how often a crop's view 1 finds
    its own view 2 among the ``N`` view-2 projections of the rank's batch; chance ``1 / N``).

    Args:
        temperature: NT-Xent temperature (original: 0.5).
        rotation_weight: weight of the rotation cross-entropy (original: 1).
        contrastive_weight: weight of NT-Xent (original: 1).
        gather: gather the projections of every rank in training (cross-rank negatives).

    Shapes:
        the model's ``head`` output is ``{"rotation": (2B, classes), "projection": (2B, D)}`` for the ``2B`` views.
    """

    def __init__(
        self, temperature: float = 0.5, rotation_weight: float = 1.0, contrastive_weight: float = 1.0, gather: bool = True
    ) -> None:
        super().__init__()
        if rotation_weight < 0 or contrastive_weight < 0 or rotation_weight + contrastive_weight == 0:
            raise ValueError(
                f"rotation_weight and contrastive_weight must be >= 0 and not both 0, got {rotation_weight}, "
                f"{contrastive_weight}."
            )
        self.rotation_weight = rotation_weight
        self.contrastive_weight = contrastive_weight
        self.temperature = temperature
        self.nt_xent = NTXentLoss(temperature=temperature, gather_distributed=gather)
        self.local_nt_xent = NTXentLoss(temperature=temperature, gather_distributed=False)

    @staticmethod
    def _require(batch: Mapping[str, Any], keys: tuple[str, ...]) -> None:
        missing = [k for k in keys if k not in batch]
        if missing:
            raise KeyError(
                f"SwinPretextTask: the batch lacks {missing} (keys: {sorted(batch)}); the proxy transform must be "
                "common.transforms.RandSwinViewsd."
            )

    def run(self, network: nn.Module, batch: Mapping[str, torch.Tensor]) -> TaskOutputs:
        (image, _, target), (view2, _, target2) = VIEW_KEYS
        self._require(batch, (image, view2))
        n = batch[image].shape[0]
        out = network(torch.cat([batch[image], batch[view2]]))
        model: dict[str, Any] = dict(out)
        if "head" in out:
            model["rotation"] = out["head"]["rotation"]
            model["projection1"], model["projection2"] = out["head"]["projection"].split(n)
        restorations = []
        if "reconstruction" in out:
            self._require(batch, (target, target2))
            first, second = out["reconstruction"].split(n)
            restorations = [
                Restoration(first, batch[target], batch[image]),
                Restoration(second, batch[target2], batch[view2]),
            ]
        return TaskOutputs(model, restorations)

    def forward(
        self, outputs: Mapping[str, Any], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if "rotation" not in outputs:
            raise KeyError("SwinPretextTask needs the head's rotation logits and projections: the model has no head.")
        (_, label, _), (_, label2, _) = VIEW_KEYS
        self._require(batch, (label, label2))
        logits = outputs["rotation"].float()
        labels = torch.cat([torch.as_tensor(batch[k], device=logits.device).long().reshape(-1) for k in (label, label2)])
        if labels.shape[0] != logits.shape[0]:
            raise ValueError(f"{labels.shape[0]} rotation labels for {logits.shape[0]} views.")
        rotation_loss = F.cross_entropy(logits, labels)
        z1, z2 = outputs["projection1"], outputs["projection2"]
        contrastive_loss = (self.nt_xent if self.training else self.local_nt_xent)(z1, z2)
        loss = self.rotation_weight * rotation_loss + self.contrastive_weight * contrastive_loss
        logs = {
            "accuracy": (logits.argmax(dim=1) == labels).float().mean().item(),
            "rotation_loss": rotation_loss.item(),
            "contrastive_loss": contrastive_loss.item(),
            "retrieval": top1_retrieval(z1, z2),
        }
        return loss, logs
