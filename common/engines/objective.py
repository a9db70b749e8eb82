"""The stage's objective, shared by the trainer and the evaluator: the forward pass, the generator and critic losses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from common.losses import TERMS, AdversarialLoss, UnitedLoss, WassersteinGPLoss, needs_decoder
from common.tasks import DiscriminativeTask, Restoration, TaskOutputs, single_view_outputs

__all__ = ["UnitedObjective", "requires_grad"]


@contextmanager
def requires_grad(module: nn.Module, flag: bool) -> Iterator[None]:
    """Temporarily set ``requires_grad`` of every parameter of ``module``, restoring the previous flags."""
    params = list(module.parameters())
    previous = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(flag)
    try:
        yield
    finally:
        for p, prev in zip(params, previous):
            p.requires_grad_(prev)


def _mean(values: Sequence[torch.Tensor]) -> torch.Tensor:
    return values[0] if len(values) == 1 else torch.stack(list(values)).mean()


class UnitedObjective(nn.Module):
    """Everything that defines a stage's loss: the task, the loss weights, the restoration loss and the adversary.

    ``generator_loss`` computes only the terms with a non-zero weight (Guo et al., MedIA 2024):

    * ``dis``: the task's loss on the model outputs;
    * ``res``: the mean over the task's restorations of ``restoration_loss(prediction, target)``;
    * ``adv``: the mean over the restorations of the adversarial loss of each prediction scored by the (frozen)
      critic with that restoration's condition.

    The forward pass itself belongs to the task (:meth:`DiscriminativeTask.run`), so a method may run the network
    on several views or decode several candidates; without a task (``w_dis = 0``) the network runs once on ``image``.

    Args:
        task: the discriminative task (required when ``w_dis > 0``).
        w_dis: weight of the discriminative term.
        w_res: weight of the restorative term.
        w_adv: weight of the adversarial term.
        restoration_loss: loss on ``(prediction, target)``; MSE by default (L1 via ``torch.nn.L1Loss``).
        adversary: the critic (required when ``w_adv > 0``), e.g. :class:`~common.networks.ConditionalPatchCritic`.
        adversarial_loss: :class:`~common.losses.WassersteinGPLoss` (default) or
            :class:`~common.losses.LeastSquaresGANLoss`.
    """

    def __init__(
        self,
        task: DiscriminativeTask | None,
        w_dis: float = 1.0,
        w_res: float = 0.0,
        w_adv: float = 0.0,
        restoration_loss: nn.Module | None = None,
        adversary: nn.Module | None = None,
        adversarial_loss: AdversarialLoss | None = None,
    ) -> None:
        super().__init__()
        self.loss = UnitedLoss(w_dis, w_res, w_adv)
        if "dis" in self.loss.active and task is None:
            raise ValueError(f"w_dis={w_dis} needs a discriminative task; got task=None.")
        if "adv" in self.loss.active and adversary is None:
            raise ValueError(f"w_adv={w_adv} needs an adversary; got adversary=None.")
        self.task = task
        self.restoration_loss = restoration_loss if restoration_loss is not None else nn.MSELoss()
        self.adversary = adversary if "adv" in self.loss.active else None
        self.adversarial_loss = adversarial_loss if adversarial_loss is not None else WassersteinGPLoss()

    @property
    def active(self) -> tuple[str, ...]:
        """Names of the terms with a non-zero weight."""
        return self.loss.active

    def check_model(self, model: nn.Module) -> None:
        """Raise when the model's components do not match the active terms (e.g. ``w_res > 0`` without a decoder)."""
        weights = self.loss.weights
        if needs_decoder(weights["res"], weights["adv"]) and getattr(model, "decoder", None) is None:
            raise ValueError(
                f"loss weights {weights} need a decoder, but the network has none "
                "(check the stage overlay: stage 2 and 3 build `decoder_def`)."
            )
        if "dis" in self.active and getattr(model, "head", None) is None and self.task.needs_head:
            raise ValueError(f"w_dis={weights['dis']} needs a head, but the network has none.")

    def run(self, network: nn.Module, batch: Mapping[str, torch.Tensor]) -> TaskOutputs:
        """The stage's forward pass: the task's, or ``network(image)`` once when there is no task."""
        return self.task.run(network, batch) if self.task is not None else single_view_outputs(network, batch)

    def _restorations(self, outputs: TaskOutputs) -> list[Restoration]:
        if not outputs.restorations:
            raise ValueError(
                f"active terms {self.active} need restorations, but the task returned none "
                "(does the network have a decoder, and does the task's run() return its predictions?)."
            )
        return outputs.restorations

    def generator_terms(
        self, outputs: TaskOutputs, batch: Mapping[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Compute the active generator terms.

        Args:
            outputs: what the task's ``run`` returned.
            batch: the batch dict on the device.

        Returns:
            ``(terms, logs)``: unweighted scalar losses by term name, and float diagnostics (``dis_<name>``).
        """
        terms: dict[str, torch.Tensor] = {}
        logs: dict[str, float] = {}
        if "dis" in self.active:
            terms["dis"], task_logs = self.task(outputs.model, batch)  # type: ignore[misc]
            logs.update({f"dis_{k}": v for k, v in task_logs.items()})
        if "res" in self.active:
            terms["res"] = _mean(
                [self.restoration_loss(r.prediction.float(), r.target.float()) for r in self._restorations(outputs)]
            )
        if "adv" in self.active:
            with requires_grad(self.adversary, False):
                terms["adv"] = _mean(
                    [
                        self.adversarial_loss.generator_loss(self.adversary, r.prediction, r.condition)
                        for r in self._restorations(outputs)
                    ]
                )
        return terms, logs

    def generator_loss(
        self, outputs: TaskOutputs, batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, float]]:
        """The weighted loss with its terms and diagnostics (see :meth:`generator_terms`)."""
        terms, logs = self.generator_terms(outputs, batch)
        return self.loss(terms), terms, logs

    def critic_loss(self, restorations: Sequence[Restoration]) -> tuple[torch.Tensor, dict[str, float]]:
        """The critic's loss, averaged over the restorations: each target is "real", each prediction "fake".

        Predictions are detached: this loss trains only the critic.

        Returns:
            The scalar loss and the critic's diagnostics averaged over the restorations.
        """
        losses, logs = [], {}
        for r in restorations:
            loss, step_logs = self.adversarial_loss.critic_loss(self.adversary, r.target, r.prediction.detach(), r.condition)
            losses.append(loss)
            for k, v in step_logs.items():
                logs[k] = logs.get(k, 0.0) + v / len(restorations)
        return _mean(losses), logs

    @staticmethod
    def report(loss: torch.Tensor, terms: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Floats for logging: ``loss`` and ``loss_dis``, ``loss_res``, ``loss_adv`` (unweighted; 0.0 when inactive)."""
        return {"loss": loss.item(), **{f"loss_{k}": terms[k].item() if k in terms else 0.0 for k in TERMS}}
