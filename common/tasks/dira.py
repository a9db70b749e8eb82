"""DiRA's discriminative branch: MoCo v2, Barlow Twins or SimSiam, with the restoration judged by an unconditional critic.

DiRA (Haghighi et al., "DiRA: Discriminative, Restorative, and Adversarial Learning for Self-supervised Medical
Image Analysis", CVPR 2022) plugs any two-view method into the discriminative branch; the paper reports MoCo v2,
Barlow Twins and SimSiam. In every variant the decoder restores the undistorted first view from its distorted
version (MSE), and the adversary, an unconditional PatchGAN, sees only the restoration or the original. So each
task here returns one :class:`Restoration` of view 1 with ``condition=None``.

* :class:`DiRAMoCoTask`: :class:`~common.tasks.MoCoTask` (momentum key network and queue, InfoNCE), its
  restoration made unconditional.
* :class:`BarlowTwinsTask`: the cross-correlation of both views' projections pushed to the identity
  (Zbontar et al., ICML 2021), with MONAI's :class:`~monai.losses.BarlowTwinsLoss`.
* :class:`SimSiamTask`: negative cosine between each view's prediction and the other view's stop-gradient
  projection, symmetrised (Chen and He, CVPR 2021).

:func:`dira_task` builds one of them by name (``discriminative`` in the bundle config).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from monai.losses import BarlowTwinsLoss
from torch import nn

from common.tasks.base import DiscriminativeTask, Restoration, TaskOutputs
from common.tasks.moco import MoCoTask
from common.tasks.retrieval import top1_retrieval

__all__ = ["DISCRIMINATIVE", "BarlowTwinsTask", "DiRAMoCoTask", "SimSiamTask", "dira_task", "unconditional"]

#: The discriminative methods of DiRA's paper, by config name.
DISCRIMINATIVE = ("moco", "barlow_twins", "simsiam")


def unconditional(restorations: list[Restoration]) -> list[Restoration]:
    """The restorations without their critic condition (DiRA's critic sees the candidate alone)."""
    return [Restoration(r.prediction, r.target, None) for r in restorations]


def _second_view(batch: Mapping[str, torch.Tensor], view_key: str, method: str) -> torch.Tensor:
    if view_key not in batch:
        raise KeyError(f"{method} needs a second view {view_key!r} in the batch (keys: {sorted(batch)}).")
    return batch[view_key]


def _view1_restoration(out: Mapping[str, Any], batch: Mapping[str, torch.Tensor]) -> list[Restoration]:
    if "reconstruction" not in out:
        return []
    if "target" not in batch:
        raise KeyError(f"the network restores, but the batch has no 'target' (keys: {sorted(batch)}).")
    return [Restoration(out["reconstruction"], batch["target"], None)]


class DiRAMoCoTask(MoCoTask):
    """MoCo v2 as DiRA's discriminative branch (DiRA's published engine): the restoration is unconditional.

    Everything else is :class:`~common.tasks.MoCoTask` (key network and queue as handed-on state, grouped
    shuffle-BN, InfoNCE, retrieval and accuracy diagnostics). DiRA's settings: ``K = 65536``, ``m = 0.999``,
    ``T = 0.2``, MLP head 2048 -> 2048 -> 128.
    """

    def run(self, network: nn.Module, batch: Mapping[str, torch.Tensor]) -> TaskOutputs:
        outputs = super().run(network, batch)
        return TaskOutputs(outputs.model, unconditional(outputs.restorations))


class BarlowTwinsTask(DiscriminativeTask):
    """Barlow Twins: the cross-correlation of the two views' projections driven to the identity matrix.

    ``run`` calls the (possibly DDP-wrapped) network on view 1 (with the decoder from stage 2 on) and on view 2
    (``decode=False``: only its projection is needed), both through ``network(...)``. ``forward`` gathers every
    rank's projections (a differentiable all-gather) and applies :class:`~monai.losses.BarlowTwinsLoss`
    ``sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2`` with ``C`` the cross-correlation of the batch-standardised
    projections over the *global* batch, so several ranks compute the loss of one process on the concatenated batch
    (the batch statistics of Barlow Twins need the whole batch). Stateless.

    Diagnostics: ``retrieval`` (top-1 retrieval of view 2 by view 1 among the rank's batch; chance ``1 / B``) and
    ``on_diagonal`` (the mean of ``C_ii``: 1 when the views agree feature by feature).

    Args:
        lambd: weight of the off-diagonal terms (Barlow Twins: 0.0051; MONAI's default 0.005).
        view_key: batch key of the second view.
    """

    def __init__(self, lambd: float = 0.0051, view_key: str = "view2") -> None:
        super().__init__()
        if lambd < 0:
            raise ValueError(f"lambd must be non-negative, got {lambd}.")
        self.view_key = view_key
        self.loss = BarlowTwinsLoss(lambd=lambd)

    def run(self, network: nn.Module, batch: Mapping[str, torch.Tensor]) -> TaskOutputs:
        view2 = _second_view(batch, self.view_key, "Barlow Twins")
        out1, out2 = network(batch["image"]), network(view2, decode=False)
        return TaskOutputs({"head": out1["head"], "z1": out1["head"], "z2": out2["head"]}, _view1_restoration(out1, batch))

    def forward(
        self, outputs: Mapping[str, Any], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        from common.engines.distributed import all_gather  # here: common.engines imports common.tasks

        z1, z2 = outputs["z1"].float(), outputs["z2"].float()
        g1, g2 = all_gather(z1), all_gather(z2)
        loss = self.loss(g1, g2)
        with torch.no_grad():
            n1 = (g1 - g1.mean(0)) / g1.std(0).add(1e-6)
            n2 = (g2 - g2.mean(0)) / g2.std(0).add(1e-6)
            on_diagonal = float((n1 * n2).sum(0).div(g1.shape[0]).mean())
        return loss, {"retrieval": top1_retrieval(z1, z2), "on_diagonal": on_diagonal}


class SimSiamTask(DiscriminativeTask):
    """SimSiam: each view's prediction regresses the other view's projection, which gets no gradient.

    ``loss = 1/2 * [D(p1, sg(z2)) + D(p2, sg(z1))]`` with ``D(p, z) = -cos(p, z)`` (Chen and He, CVPR 2021, eq. 3),
    in ``[-1, 1]``: -1 when predictions and projections align. The network (a
    :class:`~common.networks.dira.DiRAModel` with a ``predictor``) runs on both views through ``network(...)``,
    view 2 without the decoder. Per-sample, so the loss of several ranks is that of one process on the
    concatenated batch. Stateless (no momentum encoder: the stop-gradient alone prevents collapse).

    Diagnostics: ``retrieval`` (top-1 retrieval of ``z2`` by ``p1``; chance ``1 / B``) and ``z_std`` (the mean
    per-dimension standard deviation of the normalised projections: ``1 / sqrt(D)`` when healthy, 0 when collapsed,
    the paper's collapse monitor).

    Args:
        view_key: batch key of the second view.
    """

    def __init__(self, view_key: str = "view2") -> None:
        super().__init__()
        self.view_key = view_key

    def run(self, network: nn.Module, batch: Mapping[str, torch.Tensor]) -> TaskOutputs:
        view2 = _second_view(batch, self.view_key, "SimSiam")
        out1, out2 = network(batch["image"]), network(view2, decode=False)
        if "prediction" not in out1:
            raise KeyError("SimSiam needs a predictor: build the DiRAModel with `predictor` (discriminative: simsiam).")
        model = {"head": out1["head"], "z1": out1["head"], "z2": out2["head"], "p1": out1["prediction"], "p2": out2["prediction"]}
        return TaskOutputs(model, _view1_restoration(out1, batch))

    @staticmethod
    def negative_cosine(prediction: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
        """``mean_i -cos(prediction_i, sg(projection_i))``."""
        return -F.cosine_similarity(prediction.float(), projection.detach().float(), dim=1).mean()

    def forward(
        self, outputs: Mapping[str, Any], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        loss = 0.5 * (self.negative_cosine(outputs["p1"], outputs["z2"]) + self.negative_cosine(outputs["p2"], outputs["z1"]))
        with torch.no_grad():
            z_std = float(F.normalize(outputs["z1"].float(), dim=1).std(0).mean())
        return loss, {"retrieval": top1_retrieval(outputs["p1"], outputs["z2"]), "z_std": z_std}


def dira_task(
    discriminative: str = "moco",
    queue_size: int = 65536,
    temperature: float = 0.2,
    momentum: float = 0.999,
    shuffle_groups: int = 2,
    lambd: float = 0.0051,
    view_key: str = "view2",
) -> DiscriminativeTask:
    """DiRA's discriminative task by name: ``moco`` (default), ``barlow_twins`` or ``simsiam``.

    Args:
        discriminative: one of :data:`DISCRIMINATIVE`.
        queue_size, temperature, momentum, shuffle_groups: MoCo v2 (:class:`DiRAMoCoTask`).
        lambd: Barlow Twins' off-diagonal weight (:class:`BarlowTwinsTask`).
        view_key: batch key of the second view.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if discriminative == "moco":
        return DiRAMoCoTask(queue_size, temperature, momentum, shuffle_groups, view_key)
    if discriminative == "barlow_twins":
        return BarlowTwinsTask(lambd, view_key)
    if discriminative == "simsiam":
        return SimSiamTask(view_key)
    raise ValueError(f"discriminative must be one of {DISCRIMINATIVE}, got {discriminative!r}.")
