"""The plug-in point of a method: how the network runs on a batch, the discriminative loss, and the task's state.

A method of the United framework is a proxy transform (what the network sees and must predict or restore)
plus a discriminative task, and, only where its network has another shape, a model module. The task decides how
the (possibly DistributedDataParallel-wrapped) network is called on a batch; the trainer and the evaluator only
combine what it returns. See ``docs/architecture.md``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["DiscriminativeTask", "Restoration", "TaskOutputs", "single_view_outputs"]


@dataclass
class Restoration:
    """One restored candidate with its restoration target and the critic's condition.

    Attributes:
        prediction: the decoder's output, ``(B, C, *S)``.
        target: what it must restore, ``(B, C, *S)`` (the clean crop, never the corrupted input).
        condition: what the conditional critic sees beside the candidate, ``(B, C_c, *S)``: the network input the
            prediction was made from; ``None`` for an unconditional critic.
    """

    prediction: torch.Tensor
    target: torch.Tensor
    condition: torch.Tensor | None = None

    def detached(self) -> Restoration:
        """A copy that holds no autograd graph (for logging and images)."""
        condition = None if self.condition is None else self.condition.detach()
        return Restoration(self.prediction.detach(), self.target.detach(), condition)

    def __post_init__(self) -> None:
        if self.prediction.shape != self.target.shape:
            raise ValueError(
                f"a restoration's prediction {tuple(self.prediction.shape)} and target {tuple(self.target.shape)} "
                "must have the same shape."
            )


@dataclass
class TaskOutputs:
    """What a task's :meth:`DiscriminativeTask.run` returns for one batch.

    Attributes:
        model: the model outputs the discriminative loss reads (e.g. ``head`` logits, projections of both views).
        restorations: every restored candidate with its own target and condition; empty when the stage has no decoder.
    """

    model: Mapping[str, Any]
    restorations: list[Restoration] = field(default_factory=list)


def single_view_outputs(network: nn.Module, batch: Mapping[str, torch.Tensor]) -> TaskOutputs:
    """The default forward pass: ``network(batch["image"])`` once; its ``reconstruction`` restores ``target``.

    Args:
        network: the (possibly wrapped) :class:`~common.networks.UnitedModel`.
        batch: ``image`` ``(B, C, *S)``, ``target`` ``(B, C, *S)`` when the network has a decoder, task keys.

    Returns:
        The model outputs and, when the network restores, one :class:`Restoration` conditioned on ``image``.
    """
    outputs = network(batch["image"])
    restorations = []
    if "reconstruction" in outputs:
        if "target" not in batch:
            raise KeyError(f"the network restores, but the batch has no 'target' (keys: {sorted(batch)}).")
        restorations.append(Restoration(outputs["reconstruction"], batch["target"], batch["image"]))
    return TaskOutputs(outputs, restorations)


class DiscriminativeTask(nn.Module, ABC):
    """Base class of discriminative tasks: the method's forward pass, loss and state.

    The trainer, per iteration and in this order:

    1. ``outputs = task.run(network, batch)``: run the network (possibly DDP-wrapped; call it as often as the
       method needs, always through ``network(...)`` so DistributedDataParallel synchronises the gradients);
    2. ``loss, logs = task(outputs.model, batch)``: the discriminative loss and float diagnostics (logged as
       ``dis_<name>``, averaged per epoch, shown in TensorBoard for training and validation);
    3. ``task.after_step(model)`` after the generator's optimizer step, with the unwrapped model (momentum encoders,
       queues).

    The evaluator calls 1 and 2 under ``torch.no_grad()`` with the task in eval mode: a task must not change its
    state (queues, BatchNorm statistics of its copies) when ``self.training`` is false.

    State (EMA copies, queues, cluster assignments) lives in buffers or sub-modules built by :meth:`setup`; it is
    saved in the resumable checkpoint, restored on resume, and exported as ``task.pt``, which the next stage loads
    strictly when its ``handoff_components`` lists ``task``. Task parameters must not require gradients: trainable
    parts (projection heads, predictors) belong in the model, where the optimizer and DistributedDataParallel see them.

    Attributes:
        needs_head: whether the task reads ``outputs["head"]``; the trainer then refuses a model without a head.
    """

    needs_head: bool = True

    def __init__(self) -> None:
        super().__init__()
        self._is_set_up = False

    @property
    def is_set_up(self) -> bool:
        """Whether :meth:`setup` has run."""
        return self._is_set_up

    def setup(self, model: nn.Module) -> None:
        """Build the task's state from the unwrapped model, once (later calls do nothing).

        Called by the stage hand-off (before it loads a handed-off ``task.pt``) or by the trainer, in both cases
        before the checkpoint objects are collected, so that resuming restores the state.

        Args:
            model: the unwrapped :class:`~common.networks.UnitedModel` (weights already handed off).
        """
        if not self._is_set_up:
            self.build_state(model)
            self._is_set_up = True

    def build_state(self, model: nn.Module) -> None:
        """Create EMA copies, queues, etc.; stateless tasks have none. Override in subclasses."""

    def run(self, network: nn.Module, batch: Mapping[str, torch.Tensor]) -> TaskOutputs:
        """Run the network on a batch; by default once on ``image`` (see :func:`single_view_outputs`).

        Args:
            network: the possibly DDP-wrapped model.
            batch: the batch dict on the device.

        Returns:
            The model outputs for the loss and the restorations for the restorative and adversarial terms.
        """
        return single_view_outputs(network, batch)

    @abstractmethod
    def forward(
        self, outputs: Mapping[str, Any], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Compute the discriminative loss.

        Args:
            outputs: :attr:`TaskOutputs.model` of :meth:`run`.
            batch: the batch dict (``image``, ``target`` and task keys such as ``label``).

        Returns:
            A scalar loss and a dict of float diagnostics (logged as ``dis_<name>``).
        """

    def after_step(self, model: nn.Module) -> None:
        """Update task state after the generator step; stateless tasks have nothing to update."""
