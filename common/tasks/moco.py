"""MoCo v2 as the discriminative task of the United framework: a momentum key network and a queue of keys.

He et al., "Momentum contrast for unsupervised visual representation learning", CVPR 2020; Chen et al., "Improved
baselines with momentum contrastive learning" (MoCo v2), 2020; settings of DiRA's MoCo-v2 engine (Haghighi et al.,
CVPR 2022): momentum 0.999, temperature 0.2, MLP projection head.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from common.losses.contrastive import InfoNCELoss
from common.tasks.base import DiscriminativeTask, Restoration, TaskOutputs
from common.tasks.momentum import momentum_copy, update_momentum_copy
from common.tasks.queue import FeatureQueue
from common.tasks.retrieval import top1_retrieval
from common.tasks.shuffle_bn import grouped_shuffle_forward

__all__ = ["MoCoTask", "embedding_size"]


def embedding_size(head: nn.Module) -> int:
    """The output size of a projection head (its ``out_features``), for sizing a queue.

    Raises:
        ValueError: the head does not say (give the task ``embedding_dim``).
    """
    size = getattr(head, "out_features", None)
    if not isinstance(size, int):
        raise ValueError(f"cannot tell the embedding size of {type(head).__name__}: it has no integer `out_features`.")
    return size


class MoCoTask(DiscriminativeTask):
    """InfoNCE between the query (the model's projection of ``image``) and the key of ``view2`` against a queue.

    Per training step:

    1. ``run``: the (possibly DDP-wrapped) model embeds ``image`` (query ``q``, and the reconstruction from stage 2
       on); the key network (a momentum copy of ``encoder`` and ``head``, no gradients) embeds ``view2`` with grouped
       shuffle-BN (:func:`~common.tasks.shuffle_bn.grouped_shuffle_forward`: each key's BatchNorm statistics come
       from a random sub-batch, on one process as on many);
    2. ``forward``: :class:`~common.losses.InfoNCELoss` of ``q`` against its key and the queue (the queue is the
       same on every rank, so the loss of several ranks is that of one process on the concatenated batch);
    3. ``after_step``: the key network follows the updated model (``m = 0.999``), then every rank's keys are
       gathered and enqueued (the queues of all ranks stay equal).

    The restoration target is the clean first view (``target``), conditioned on the network input ``image``. State
    (``key_network``, ``queue``) is saved in the checkpoint and handed on when a stage lists ``task``.

    Diagnostics: ``retrieval`` (top-1 retrieval of each query's key among the batch's keys; chance ``1 / B``) and
    ``accuracy`` (the positive scores highest among the ``1 + K`` logits, MoCo's "acc").

    Args:
        queue_size: ``K`` keys in the queue (DiRA 2D: 65 536; for 3D cubes at most the number of distinct cubes).
        temperature: InfoNCE temperature (0.2).
        momentum: key network momentum (0.999).
        shuffle_groups: random sub-batches of the key batch (1 disables the shuffle).
        view_key: batch key of the second view.
        embedding_dim: the head's output size (default: the head's ``out_features``).
    """

    def __init__(
        self,
        queue_size: int = 16384,
        temperature: float = 0.2,
        momentum: float = 0.999,
        shuffle_groups: int = 2,
        view_key: str = "view2",
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum}.")
        if int(shuffle_groups) != shuffle_groups or shuffle_groups < 1:
            raise ValueError(f"shuffle_groups must be a positive integer, got {shuffle_groups!r}.")
        self.queue_size = int(queue_size)
        self.momentum = float(momentum)
        self.shuffle_groups = int(shuffle_groups)
        self.view_key = view_key
        self.embedding_dim = embedding_dim
        self.loss = InfoNCELoss(temperature)
        self._pending: torch.Tensor | None = None

    def build_state(self, model: nn.Module) -> None:
        self.key_network = momentum_copy(model, ["encoder", "head"])
        self.queue = FeatureQueue(self.queue_size, self.embedding_dim or embedding_size(model.head))

    def keys(self, view: torch.Tensor) -> torch.Tensor:
        """The key network's embeddings ``(B, D)`` of ``view`` (grouped shuffle-BN while training), no gradients."""

        def embed(x: torch.Tensor) -> torch.Tensor:
            return self.key_network["head"](self.key_network["encoder"](x)[-1])

        with torch.no_grad():
            if self.training:
                return grouped_shuffle_forward(embed, view, self.shuffle_groups)
            return embed(view)

    def run(self, network: nn.Module, batch: Mapping[str, torch.Tensor]) -> TaskOutputs:
        if self.view_key not in batch:
            raise KeyError(f"MoCo needs a second view {self.view_key!r} in the batch (keys: {sorted(batch)}).")
        out = network(batch["image"])
        keys = self.keys(batch[self.view_key])
        self._pending = keys.detach() if self.training else None
        if self.training:  # before the optimizer step: every rank's keys of this step must fit in the queue
            from common.engines.distributed import world_size

            self.queue.check_batch(keys.shape[0] * world_size())
        restorations = []
        if "reconstruction" in out:
            restorations.append(Restoration(out["reconstruction"], batch["target"], batch["image"]))
        return TaskOutputs({"head": out["head"], "query": out["head"], "key": keys}, restorations)

    def forward(
        self, outputs: Mapping[str, Any], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        query, key = outputs["query"], outputs["key"]
        logits = self.loss.logits(query, key, self.queue.features)
        loss = nn.functional.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))
        accuracy = float((logits.argmax(dim=1) == 0).float().mean())
        return loss, {"retrieval": top1_retrieval(query, key), "accuracy": accuracy}

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        from common.engines.distributed import all_gather  # here: common.engines imports common.tasks

        update_momentum_copy(self.key_network, model, self.momentum)
        if self._pending is not None:
            self.queue.enqueue(all_gather(self._pending, with_grad=False))
            self._pending = None
