"""The plug-in point for discriminative tasks.

A method of the United framework is a proxy transform (what the network sees and must predict or restore)
plus a discriminative task: the loss on the model outputs, and any state the loss needs (momentum
encoders, queues, cluster assignments). The trainer knows nothing else about the method.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["DiscriminativeTask"]


class DiscriminativeTask(nn.Module, ABC):
    """Base class of discriminative tasks.

    Subclasses implement :meth:`forward`; tasks with state register it as buffers or sub-modules so it is
    saved in the resumable checkpoint (the trainer checkpoints ``task.state_dict()`` when non-empty).

    The trainer calls, per iteration:

    1. ``loss, logs = task(outputs, batch)`` with the generator's outputs (``features``, ``head``,
       ``reconstruction`` when present; see :class:`~common.networks.UnitedModel`) and the batch dict on
       the device;
    2. ``task.after_step(model)`` after the generator's optimizer step, with the unwrapped
       :class:`~common.networks.UnitedModel` (for momentum/queue updates).

    Attributes:
        needs_head: whether the task reads ``outputs["head"]``; the trainer then refuses a model without a head.
    """

    needs_head: bool = True

    @abstractmethod
    def forward(
        self, outputs: Mapping[str, Any], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Compute the discriminative loss.

        Args:
            outputs: the generator's output dict.
            batch: the batch dict (``image``, ``target`` and task keys such as ``label``).

        Returns:
            A scalar loss and a dict of float diagnostics (logged as ``dis_<name>``).
        """

    def after_step(self, model: nn.Module) -> None:
        """Update task state after the generator step; stateless tasks have nothing to update."""
