"""BYOL as the discriminative task of the United framework: an EMA target network on a cosine momentum schedule.

Grill et al., "Bootstrap your own latent: a new approach to self-supervised learning", NeurIPS 2020.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from common.losses.byol import BYOLLoss
from common.tasks.base import DiscriminativeTask, Restoration, TaskOutputs
from common.tasks.momentum import cosine_schedule, momentum_copy, update_momentum_copy
from common.tasks.retrieval import top1_retrieval

__all__ = ["BYOLTask"]


class BYOLTask(DiscriminativeTask):
    """Predict the target network's projection of the other view, symmetrised (``2 - 2 cos``).

    Per training step:

    1. ``run``: the online model (:class:`~common.networks.BYOLModel`, possibly DDP-wrapped) runs on **both** views,
       each call with gradients through ``network(...)``, giving predictions ``p1``, ``p2`` (and, from stage 2 on,
       one reconstruction per view); the target network (a momentum copy of ``encoder`` and ``head``, the
       projector, without predictor) gives ``z1``, ``z2`` without gradients;
    2. ``forward``: :class:`~common.losses.BYOLLoss` of ``(p1, z2)`` and ``(p2, z1)``; per-sample, so the loss of
       several ranks is that of one process on the concatenated batch;
    3. ``after_step``: the target follows the updated model with ``tau = cosine_schedule(step, max_steps,
       base_momentum, final_momentum)`` (0.996 rising to 1), then ``step`` counts the update.

    Restorations: view 1's reconstruction against ``target`` (the clean first view) and view 2's against
    ``view_target_key`` (the clean second view), each conditioned on its own network input. State
    (``target_network``, ``step``) is saved in the checkpoint and restored exactly on resume. The schedule belongs to
    one stage: the bundle does not hand the target on but re-initialises it from the handed-off encoder and
    projector, so that every stage starts at ``base_momentum`` (a target handed on at ``tau = 1`` would be frozen).

    Diagnostics: ``retrieval`` (top-1 retrieval of ``z2_i`` by ``p1_i`` among the batch; chance ``1 / B``) and
    ``momentum`` (the ``tau`` of the next update).

    Args:
        max_steps: optimizer steps over which ``tau`` rises to ``final_momentum`` (the stage's length).
        base_momentum: ``tau`` at step 0 (0.996).
        final_momentum: ``tau`` at ``max_steps`` (1.0).
        view_key: batch key of the second view.
        view_target_key: batch key of the second view's clean restoration target.
    """

    def __init__(
        self,
        max_steps: int,
        base_momentum: float = 0.996,
        final_momentum: float = 1.0,
        view_key: str = "view2",
        view_target_key: str = "target2",
    ) -> None:
        super().__init__()
        if int(max_steps) != max_steps or max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}.")
        if not (0.0 <= base_momentum <= 1.0 and 0.0 <= final_momentum <= 1.0):
            raise ValueError(f"momenta must lie in [0, 1], got {base_momentum}, {final_momentum}.")
        self.max_steps = int(max_steps)
        self.base_momentum, self.final_momentum = float(base_momentum), float(final_momentum)
        self.view_key, self.view_target_key = view_key, view_target_key
        self.loss = BYOLLoss()

    def build_state(self, model: nn.Module) -> None:
        self.target_network = momentum_copy(model, ["encoder", "head"])
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @property
    def momentum(self) -> float:
        """The ``tau`` of the next update."""
        return cosine_schedule(int(self.step), self.max_steps, self.base_momentum, self.final_momentum)

    def targets(self, view: torch.Tensor) -> torch.Tensor:
        """The target network's projection ``(B, D)`` of ``view``, without gradients."""
        with torch.no_grad():
            return self.target_network["head"](self.target_network["encoder"](view)[-1])

    def run(self, network: nn.Module, batch: Mapping[str, torch.Tensor]) -> TaskOutputs:
        if self.view_key not in batch:
            raise KeyError(f"BYOL needs a second view {self.view_key!r} in the batch (keys: {sorted(batch)}).")
        view1, view2 = batch["image"], batch[self.view_key]
        if self.training and view1.shape[0] < 2 and any(isinstance(m, nn.BatchNorm1d) for m in network.modules()):
            raise ValueError(
                "BYOL's projector and predictor use BatchNorm1d, which needs at least 2 pairs per step on every rank; "
                f"got {view1.shape[0]}: raise batch_size * num_samples (per rank) or build the heads with batch_norm: false."
            )
        online1, online2 = network(view1), network(view2)  # both views through the (DDP-wrapped) model
        outputs = {
            "head": online1["head"],
            "p1": online1["prediction"],
            "p2": online2["prediction"],
            "z1": self.targets(view1),
            "z2": self.targets(view2),
        }
        restorations = []
        if "reconstruction" in online1:
            restorations.append(Restoration(online1["reconstruction"], batch["target"], view1))
            restorations.append(Restoration(online2["reconstruction"], batch[self.view_target_key], view2))
        return TaskOutputs(outputs, restorations)

    def forward(
        self, outputs: Mapping[str, Any], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        loss = self.loss(outputs["p1"], outputs["p2"], outputs["z1"], outputs["z2"])
        return loss, {"retrieval": top1_retrieval(outputs["p1"], outputs["z2"]), "momentum": self.momentum}

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        update_momentum_copy(self.target_network, model, self.momentum)
        self.step += 1
