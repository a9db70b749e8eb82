"""The generator objective shared by the trainer and the evaluator."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from common.losses import TERMS, AdversarialLoss, UnitedLoss, WassersteinGPLoss
from common.tasks import DiscriminativeTask

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


class UnitedObjective(nn.Module):
    """Everything that defines a stage's generator loss: the task, the loss weights, the adversary.

    ``generator_terms`` computes only the terms with a non-zero weight (Guo et al., MedIA 2024):

    * ``dis``: the task's loss on the model outputs;
    * ``res``: ``restoration_loss(reconstruction, target)``;
    * ``adv``: the adversarial loss of the reconstruction scored by the (frozen) critic, conditioned on the
      network input.

    Args:
        task: the discriminative task (required when ``w_dis > 0``).
        w_dis: weight of the discriminative term.
        w_res: weight of the restorative term.
        w_adv: weight of the adversarial term.
        restoration_loss: loss on ``(reconstruction, target)``; MSE by default (L1 via ``torch.nn.L1Loss``).
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
        needs_decoder = "res" in self.active or "adv" in self.active
        decoder = getattr(model, "decoder", None)
        if needs_decoder and decoder is None:
            raise ValueError(
                f"loss weights {self.loss.weights} need a decoder, but the network has none "
                "(check the stage overlay: stage 2 and 3 build `decoder_def`)."
            )
        if "dis" in self.active and getattr(model, "head", None) is None and self.task.needs_head:
            raise ValueError(f"w_dis={self.loss.weights['dis']} needs a head, but the network has none.")

    def generator_terms(
        self, outputs: Mapping[str, Any], batch: Mapping[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Compute the active generator terms.

        Args:
            outputs: the model's output dict (``features``, ``head``, ``reconstruction``).
            batch: the batch dict on the device (``image``, ``target``, task keys).

        Returns:
            ``(terms, logs)``: unweighted scalar losses by term name, and float diagnostics.
        """
        terms: dict[str, torch.Tensor] = {}
        logs: dict[str, float] = {}
        if "dis" in self.active:
            terms["dis"], task_logs = self.task(outputs, batch)  # type: ignore[misc]
            logs.update({f"dis_{k}": v for k, v in task_logs.items()})
        if "res" in self.active or "adv" in self.active:
            if "target" not in batch:
                raise KeyError(f"restoration needs a 'target' in the batch (keys: {sorted(batch)}).")
            reconstruction = outputs["reconstruction"]
        if "res" in self.active:
            terms["res"] = self.restoration_loss(reconstruction.float(), batch["target"].float())
        if "adv" in self.active:
            with requires_grad(self.adversary, False):
                terms["adv"] = self.adversarial_loss.generator_loss(self.adversary, reconstruction, batch["image"])
        return terms, logs

    @staticmethod
    def report(loss: torch.Tensor, terms: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Floats for logging: ``loss`` and ``loss_dis``, ``loss_res``, ``loss_adv`` (unweighted; 0.0 when inactive)."""
        return {"loss": loss.item(), **{f"loss_{k}": terms[k].item() if k in terms else 0.0 for k in TERMS}}
