"""Validation of a stage: the same generator objective on held-out crops, without optimisation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from ignite.metrics import Average
from monai.engines import SupervisedEvaluator
from torch import nn

from common.engines.batch import prepare_ssl_batch
from common.engines.iteration_output import IterationOutput
from common.engines.objective import UnitedObjective
from common.engines.output_means import OutputMeans

__all__ = ["UnitedEvaluator"]


def _lower_is_better(current: float, best: float) -> bool:
    return current < best


class UnitedEvaluator(SupervisedEvaluator):
    """Evaluate the stage's weighted loss (and each term) on a validation loader.

    The key metric ``val_loss`` (lower is better) is the mean weighted loss over the loader; ``val_loss_dis``,
    ``val_loss_res``, ``val_loss_adv`` are the mean unweighted terms and ``val_dis_<name>`` the task's diagnostics
    (e.g. ``val_dis_accuracy``). It runs the same forward pass and objective as the trainer
    (:meth:`UnitedObjective.run` and :meth:`UnitedObjective.generator_loss`) under ``torch.no_grad()``, with the
    network, the task and the critic in eval mode, so validation changes no BatchNorm statistics and no task state
    (queues, EMA copies). The proxy transforms are random, so pass a ``seed`` to re-seed the validation transforms
    at every run and compare epochs on the same crops.

    Args:
        device: device of the run.
        val_data_loader: loader of batch dicts.
        network: the :class:`~common.networks.UnitedModel` (possibly DDP-wrapped).
        objective: the stage's :class:`~common.engines.UnitedObjective`.
        seed: seed applied to the loader's dataset transform at the start of every run (``None``: no re-seeding).
        epoch_length: iterations per run (default: the loader's length).
        prepare_batch: batch preparation.
        val_handlers: MONAI/Ignite handlers.
        kwargs: further :class:`~monai.engines.SupervisedEvaluator` arguments.
    """

    def __init__(
        self,
        device: str | torch.device,
        val_data_loader: Iterable,
        network: nn.Module,
        objective: UnitedObjective,
        seed: int | None = 0,
        epoch_length: int | None = None,
        prepare_batch: Callable = prepare_ssl_batch,
        val_handlers: Sequence | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("decollate", False)
        kwargs.setdefault("metric_cmp_fn", _lower_is_better)
        super().__init__(
            device=device,
            val_data_loader=val_data_loader,
            network=network,
            epoch_length=epoch_length,
            prepare_batch=prepare_batch,
            key_val_metric={"val_loss": Average(output_transform=lambda out: out["loss"], device="cpu")},
            additional_metrics={"val_outputs": OutputMeans(prefix="val_", exclude=("loss",))},
            val_handlers=val_handlers,
            **kwargs,
        )
        self.objective = objective
        self.seed = seed
        self.state.best_metric = float("inf")  # MONAI starts at -1; the loss (with an adversarial term) can be negative

    def _reseed(self) -> None:
        transform = getattr(getattr(self.data_loader, "dataset", None), "transform", None)
        if self.seed is not None and hasattr(transform, "set_random_state"):
            transform.set_random_state(seed=self.seed)

    def run(self, global_epoch: int = 1) -> None:  # type: ignore[override]
        self._reseed()
        super().run(global_epoch)

    def _iteration(self, engine: UnitedEvaluator, batchdata: dict[str, Any]) -> IterationOutput:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        objective = engine.objective
        for module in (engine.network, objective.task, objective.adversary):
            if module is not None:
                module.eval()
        with torch.no_grad():
            outputs = objective.run(engine.network, batch)
            loss, terms, logs = objective.generator_loss(outputs, batch)
        engine.state.restorations = [r.detached() for r in outputs.restorations]  # for image panels
        output = objective.report(loss, terms)
        output.update(logs)
        engine.state.output = IterationOutput(output)
        return engine.state.output
