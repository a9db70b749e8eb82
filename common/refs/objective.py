"""The ReFs objective: a method's objective plus the supervised reference task and gradient matching.

ReFs (Xie et al., "ReFs: A hybrid pre-training paradigm for 3D medical image segmentation", MedIA 91:103023, 2024)
trains a self-supervised method together with an off-the-shelf segmentation task (the *reference* task) and asks the
feature extractor to receive similar gradients from both. :class:`RefsObjective` wraps any method's
:class:`~common.engines.UnitedObjective` without changing it or the trainer:

* ``run(network, batch)``: the method's forward pass, then, when gradients are on (the trainer's generator step),
  the reference forward ``network(reference_image, reference=True)`` on the next batch of the labeled reference
  loader, through the possibly DDP-wrapped network so DistributedDataParallel sees every gradient;
* ``generator_loss(outputs, batch)``: with ``L_ssl`` the method's weighted loss (``w_dis L_dis + w_res L_res +
  w_adv L_adv``) and ``L_ref`` the reference segmentation loss (Dice + cross-entropy by default),

      ``L = L_ssl + w_ref * L_ref + lambda * (1 - cos(g_ssl, g_ref)) [+ PCGrad term]``

  where ``g_ssl``, ``g_ref`` are the encoder gradients of ``L_ssl`` and ``w_ref * L_ref``
  (:func:`~common.refs.match_gradients`, which documents the formula and why it was chosen).

Without gradients (validation, critic-only iterations of ``generator_interval > 1``) nothing is added: the value is
the method's own loss. Diagnostics in the iteration output (epoch means in ``engine.state.metrics``): ``loss_ssl``,
``loss_ref``, ``refs_cosine``, ``refs_penalty``, ``refs_conflict`` (1 when ``<g_ssl, g_ref> < 0``: its epoch mean
is the conflict rate) and ``refs_correction_norm``; ``loss`` is the total ``L``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from monai.losses import DiceCELoss
from torch import nn

from common.engines.distributed import unwrap
from common.refs.data import ReferenceBatches
from common.refs.gradients import match_gradients
from common.refs.model import ReferenceModel
from common.tasks import TaskOutputs

__all__ = ["RefsObjective", "RefsOutputs"]


@dataclass
class RefsOutputs(TaskOutputs):
    """The method's :class:`~common.tasks.TaskOutputs` plus the reference task's logits and labels.

    Attributes:
        reference_logits: ``(B_r, num_classes, *S_r)`` segmentation logits of the reference batch.
        reference_label: ``(B_r, 1, *S_r)`` class indices.
        shared_parameters: the parameters whose gradients are matched (the encoder's trainable ones).
    """

    reference_logits: torch.Tensor | None = None
    reference_label: torch.Tensor | None = None
    shared_parameters: list[nn.Parameter] = field(default_factory=list)


class RefsObjective(nn.Module):
    """A method's objective with the ReFs reference task and encoder-gradient matching (Xie et al., MedIA 2024).

    It exposes what :class:`~common.engines.UnitedTrainer` uses of an objective (``loss``, ``task``, ``adversary``,
    ``active``, ``check_model``, ``run``, ``generator_loss``, ``critic_loss``, ``report``) and delegates all but
    ``run`` and ``generator_loss`` to the wrapped objective. The trained network must be a
    :class:`~common.refs.ReferenceModel` (possibly DDP-wrapped).

    Args:
        objective: the method's :class:`~common.engines.UnitedObjective`.
        reference_data: an iterable of reference batches (dicts with ``image_key`` ``(B, C, *S)`` and ``label_key``
            ``(B, 1, *S)``), e.g. a DataLoader; it is cycled for as long as training runs.
        w_ref: weight of the reference loss.
        penalty_weight: ``lambda`` of the cosine penalty (0: monitor the cosine only).
        projection: add the PCGrad projection of conflicting gradients.
        reference_loss: loss on ``(logits, label)``; default MONAI ``DiceCELoss(to_onehot_y=True, softmax=True)``.
        image_key: image key of the reference batches.
        label_key: label key of the reference batches.

    Raises:
        ValueError: a negative weight.
    """

    def __init__(
        self,
        objective: nn.Module,
        reference_data: Iterable[Mapping[str, torch.Tensor]],
        w_ref: float = 1.0,
        penalty_weight: float = 0.1,
        projection: bool = False,
        reference_loss: nn.Module | None = None,
        image_key: str = "image",
        label_key: str = "label",
    ) -> None:
        super().__init__()
        if w_ref < 0 or penalty_weight < 0:
            raise ValueError(f"refs weights must be non-negative, got w_ref={w_ref}, penalty_weight={penalty_weight}.")
        self.objective = objective
        self.w_ref = float(w_ref)
        self.penalty_weight = float(penalty_weight)
        self.projection = bool(projection)
        self.reference_loss = reference_loss if reference_loss is not None else DiceCELoss(to_onehot_y=True, softmax=True)
        self.image_key, self.label_key = image_key, label_key
        self.reference_batches: Iterator[Mapping[str, torch.Tensor]] = (
            reference_data if isinstance(reference_data, ReferenceBatches) else ReferenceBatches(reference_data)
        )

    # ---- what the trainer and the evaluator use of an objective, delegated
    @property
    def loss(self) -> nn.Module:
        return self.objective.loss

    @property
    def task(self) -> Any:
        return self.objective.task

    @property
    def adversary(self) -> nn.Module | None:
        return self.objective.adversary

    @property
    def active(self) -> tuple[str, ...]:
        return self.objective.active

    def critic_loss(self, restorations: Any) -> tuple[torch.Tensor, dict[str, float]]:
        return self.objective.critic_loss(restorations)

    def report(self, loss: torch.Tensor, terms: Mapping[str, torch.Tensor]) -> dict[str, float]:
        return self.objective.report(loss, terms)

    def check_model(self, model: nn.Module) -> None:
        """The wrapped objective's checks, and that ``model`` is a :class:`ReferenceModel`."""
        if not isinstance(model, ReferenceModel):
            raise ValueError(
                f"the ReFs objective needs the network to be a common.refs.ReferenceModel, got {type(model).__name__}. "
                "Put refs.yaml after multi_gpu_train.yaml in the config list (both define `network`)."
            )
        self.objective.check_model(model)

    # ---- the reference task
    def run(self, network: nn.Module, batch: Mapping[str, torch.Tensor]) -> TaskOutputs:
        """The method's forward pass, plus the reference forward when gradients are enabled."""
        outputs = self.objective.run(network, batch)
        if not torch.is_grad_enabled():
            return outputs
        model = unwrap(network)
        if not isinstance(model, ReferenceModel):
            self.check_model(model)
        reference = next(self.reference_batches)
        for key in (self.image_key, self.label_key):
            if key not in reference:
                raise KeyError(f"a reference batch has no {key!r} (keys: {sorted(reference)}).")
        device = next(iter(model.parameters())).device
        image = reference[self.image_key].to(device)
        label = reference[self.label_key].to(device)
        logits = network(image, reference=True)
        return RefsOutputs(
            outputs.model, outputs.restorations, reference_logits=logits, reference_label=label,
            shared_parameters=model.shared_parameters(),
        )  # fmt: skip

    def generator_loss(
        self, outputs: TaskOutputs, batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, float]]:
        """``L_ssl + w_ref * L_ref`` plus the gradient-matching term, with ``ref`` among the terms and the diagnostics.

        Returns the method's own ``(loss, terms, logs)`` unchanged when ``outputs`` holds no reference forward.
        """
        loss, terms, logs = self.objective.generator_loss(outputs, batch)
        if not isinstance(outputs, RefsOutputs) or outputs.reference_logits is None:
            return loss, terms, logs
        reference_loss = self.reference_loss(outputs.reference_logits.float(), outputs.reference_label)
        weighted = self.w_ref * reference_loss
        match = match_gradients(loss, weighted, outputs.shared_parameters, self.penalty_weight, self.projection)
        total = loss + weighted + match.loss
        logs = {
            **logs,
            "loss_ssl": loss.item(),
            "loss_ref": reference_loss.item(),
            "refs_cosine": match.cosine,
            "refs_penalty": match.penalty,
            "refs_conflict": match.conflict,
            "refs_correction_norm": match.correction_norm,
        }
        return total, {**terms, "ref": reference_loss}, logs
