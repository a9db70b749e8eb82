"""PCRL as the discriminative task of the United framework: an EMA teacher, a memory queue with NCE, mixup, and
the conditioned and hybrid reconstructions of the clean crops.

Zhou et al., "Preservational learning improves self-supervised medical image models by reconstructing diverse
contexts", ICCV 2021 (the improved 3D version of the authors' code).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from common.losses.nce import NCELoss
from common.tasks.base import DiscriminativeTask, Restoration, TaskOutputs
from common.tasks.moco import embedding_size
from common.tasks.momentum import momentum_copy, update_momentum_copy
from common.tasks.queue import FeatureQueue
from common.tasks.retrieval import top1_retrieval
from common.tasks.shuffle_bn import grouped_shuffle_forward
from common.transforms.spatial_code import apply_spatial_code

__all__ = ["PCRLTask", "mix"]


def mix(a: torch.Tensor, b: torch.Tensor, weight: float) -> torch.Tensor:
    """``weight * a + (1 - weight) * b``."""
    return weight * a + (1.0 - weight) * b


class PCRLTask(DiscriminativeTask):
    """Student/teacher instance discrimination with NCE, plus PCRL's four reconstructions (from stage 2 on).

    Batch keys: ``image`` and ``view2`` (the two corrupted crops, network inputs), ``target`` and ``target2`` (the
    same crops clean, before corruption), ``aug`` and ``aug2`` (the spatial codes of
    :class:`~common.transforms.RandSpatialCoded`). The model is a :class:`~common.networks.PCRLModel`.

    Per training step:

    1. the teacher (momentum copy of ``encoder`` and ``head``) embeds ``view2`` (key ``k`` and feature maps) with
       grouped shuffle-BN; the student (through ``network(...)``) embeds ``image`` (query ``q``) and decodes
       (a) its own features conditioned on ``aug`` and (b) the hybrid ``alpha1 * own + (1 - alpha1) * teacher's``
       (the teacher's bottleneck conditioned on ``aug2``), ``alpha1 = max(a, 1 - a)``, ``a ~ Beta(mix_beta, mix_beta)``;
    2. mixup: ``mixed_x = lam * x + (1 - lam) * x[perm]`` of both inputs and of the clean crops with one ``lam`` and
       permutation; the teacher embeds the mixed second view (``mixed_k``), the student the mixed first view
       (``mixed_q``) and decodes (c) its own features and (d) the hybrid with ``alpha2``, both with the identity code
       (the mixed targets are not transformed);
    3. ``forward``: the mean of three :class:`~common.losses.NCELoss` terms against the queue: ``(q, k)``,
       ``(mixed_q, mixed_k)`` and ``(mixed_q, lam * k + (1 - lam) * k[perm])``; ``log_z`` is set on the first
       training batch from every rank's scores;
    4. ``after_step``: the teacher follows the student (``m = 0.999``), every rank's ``k`` is enqueued.

    The restorations (each a :class:`~common.tasks.Restoration` with its own target; the critic sees each prediction
    beside the input it was made from): (a) against ``apply_spatial_code(target, aug)``, the **clean** first crop
    transformed (PCRL's code restores the corrupted input here; we do not); (b) against the same mixture of the two
    transformed clean crops, conditioned on the same mixture of the two inputs; (c) against the mixed clean first
    crops; (d) against the ``alpha2`` mixture of the mixed clean crops.

    Diagnostics: ``retrieval`` (top-1 retrieval of ``k_i`` by ``q_i`` among the batch; chance ``1 / B``) and
    ``positive_similarity`` (mean cosine of ``q`` and ``k``).

    Args:
        queue_size: ``K`` (PCRL: 16 384).
        temperature: NCE temperature (PCRL ``--moco_t``: 0.2).
        momentum: teacher momentum (0.999).
        shuffle_groups: random sub-batches of the teacher's batch (1 disables the shuffle).
        mix_beta: the Beta distribution's parameter for ``alpha`` and ``lam`` (1: uniform).
        view_key, view_target_key, code_key, view_code_key: batch keys of the second view, its clean crop and the codes.
        embedding_dim: the head's output size (default: the head's ``out_features``).
    """

    def __init__(
        self,
        queue_size: int = 16384,
        temperature: float = 0.2,
        momentum: float = 0.999,
        shuffle_groups: int = 2,
        mix_beta: float = 1.0,
        view_key: str = "view2",
        view_target_key: str = "target2",
        code_key: str = "aug",
        view_code_key: str = "aug2",
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= momentum <= 1.0 or not mix_beta > 0:
            raise ValueError(f"need momentum in [0, 1] and mix_beta > 0, got {momentum}, {mix_beta}.")
        if int(shuffle_groups) != shuffle_groups or shuffle_groups < 1:
            raise ValueError(f"shuffle_groups must be a positive integer, got {shuffle_groups!r}.")
        self.queue_size = int(queue_size)
        self.momentum = float(momentum)
        self.shuffle_groups = int(shuffle_groups)
        self.beta = torch.distributions.Beta(float(mix_beta), float(mix_beta))
        self.view_key, self.view_target_key = view_key, view_target_key
        self.code_key, self.view_code_key = code_key, view_code_key
        self.embedding_dim = embedding_dim
        self.loss = NCELoss(temperature)
        self._pending: torch.Tensor | None = None

    def build_state(self, model: nn.Module) -> None:
        self.teacher = momentum_copy(model, ["encoder", "head"])
        self.queue = FeatureQueue(self.queue_size, self.embedding_dim or embedding_size(model.head))
        self.register_buffer("log_z", torch.tensor(float("nan")))  # NCE log-normaliser, set on the first batch

    def _alpha(self) -> float:
        a = float(self.beta.sample())
        return max(a, 1.0 - a)

    def teacher_outputs(self, view: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The teacher's feature maps and embedding ``(B, D)`` of ``view`` (grouped shuffle-BN while training)."""

        def embed(x: torch.Tensor) -> list[torch.Tensor]:
            features = self.teacher["encoder"](x)
            return [*features, self.teacher["head"](features[-1])]

        with torch.no_grad():
            out = grouped_shuffle_forward(embed, view, self.shuffle_groups) if self.training else embed(view)
        return list(out[:-1]), out[-1]

    def _check(self, batch: Mapping[str, torch.Tensor]) -> None:
        needed = ["image", "target", self.view_key, self.view_target_key, self.code_key, self.view_code_key]
        missing = [k for k in needed if k not in batch]
        if missing:
            raise KeyError(f"PCRL needs batch keys {missing} (keys: {sorted(batch)}); check the proxy transforms.")

    def run(self, network: nn.Module, batch: Mapping[str, torch.Tensor]) -> TaskOutputs:
        self._check(batch)
        x1, x2 = batch["image"], batch[self.view_key]
        code1, code2 = batch[self.code_key].float(), batch[self.view_code_key].float()
        teacher_features, key = self.teacher_outputs(x2)
        alpha1 = self._alpha()
        out = network(x1, code=code1, mix_features=teacher_features, mix_code=code2, alpha=alpha1)

        lam = self._alpha()
        perm = torch.randperm(x1.shape[0]).to(x1.device)
        mixed_x1, mixed_x2 = mix(x1, x1[perm], lam), mix(x2, x2[perm], lam)
        mixed_teacher_features, mixed_key = self.teacher_outputs(mixed_x2)
        alpha2 = self._alpha()
        mixed_out = network(mixed_x1, mix_features=mixed_teacher_features, alpha=alpha2)
        self._pending = key.detach() if self.training else None
        if self.training:  # before the optimizer step: every rank's keys of this step must fit in the queue
            from common.engines.distributed import world_size

            self.queue.check_batch(key.shape[0] * world_size())

        outputs = {
            "head": out["head"],
            "query": out["head"],
            "key": key,
            "mixed_query": mixed_out["head"],
            "mixed_key": mixed_key,
            "mixed_key_features": mix(key, key[perm], lam),
        }
        restorations = []
        if "reconstruction" in out:
            t1 = apply_spatial_code(batch["target"], code1)
            t2 = apply_spatial_code(batch[self.view_target_key], code2)
            clean1, clean2 = batch["target"], batch[self.view_target_key]
            mixed_t1, mixed_t2 = mix(clean1, clean1[perm], lam), mix(clean2, clean2[perm], lam)
            restorations = [
                Restoration(out["reconstruction"], t1, x1),
                Restoration(out["hybrid"], mix(t1, t2, alpha1), mix(x1, x2, alpha1)),
                Restoration(mixed_out["reconstruction"], mixed_t1, mixed_x1),
                Restoration(mixed_out["hybrid"], mix(mixed_t1, mixed_t2, alpha2), mix(mixed_x1, mixed_x2, alpha2)),
            ]
        return TaskOutputs(outputs, restorations)

    def _log_z(self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """The stored log-normaliser; on the first training batch, set it (from every rank's scores)."""
        if not bool(torch.isnan(self.log_z)):
            return self.log_z
        query, key = pairs[0]
        value = self.loss.log_normaliser(query.detach(), key.detach(), self.queue.features)
        if self.training:
            self.log_z.copy_(value)
        return value

    def forward(
        self, outputs: Mapping[str, Any], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        query, key = outputs["query"], outputs["key"]
        pairs = [(query, key), (outputs["mixed_query"], outputs["mixed_key"]), (outputs["mixed_query"], outputs["mixed_key_features"])]
        log_z = self._log_z(pairs)
        negatives = self.queue.features
        loss = torch.stack([self.loss(q, k, negatives, log_z) for q, k in pairs]).mean()
        similarity = float(nn.functional.cosine_similarity(query.detach().float(), key.float(), dim=1).mean())
        return loss, {"retrieval": top1_retrieval(query, key), "positive_similarity": similarity}

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        from common.engines.distributed import all_gather  # here: common.engines imports common.tasks

        update_momentum_copy(self.teacher, model, self.momentum)
        if self._pending is not None:
            self.queue.enqueue(all_gather(self._pending, with_grad=False))
            self._pending = None
