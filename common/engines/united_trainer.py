"""The stage-aware trainer: one Ignite engine for every stage and every method of the United framework."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from ignite.metrics import Average
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from torch import nn
from torch.optim import Optimizer

from common.engines.batch import prepare_ssl_batch
from common.engines.distributed import average_gradients, broadcast_module, unwrap
from common.engines.objective import UnitedObjective
from common.losses import TERMS

__all__ = ["UnitedTrainer", "LOSS_KEYS"]

#: Keys of the trainer's per-iteration output that are also averaged per epoch into ``state.metrics``.
LOSS_KEYS = ("loss", *(f"loss_{term}" for term in TERMS), "loss_critic")


class UnitedTrainer(SupervisedTrainer):
    """Discriminative + restorative + adversarial training in one iteration (Guo et al., MedIA 2024).

    Per iteration, with ``image`` the network input and ``target`` the clean restoration target:

    1. the generator (``network``: encoder, head and, from stage 2, decoder) runs once on ``image``;
    2. when the adversarial term is active, the critic takes ``critic_steps`` updates with its own optimizer on
       ``(target | image)`` as real and ``(reconstruction.detach() | image)`` as fake;
    3. the generator takes one step on ``w_dis * L_dis + w_res * L_res + w_adv * L_adv`` with the critic frozen;
    4. the task updates its state (``task.after_step``), e.g. momentum encoders and queues.

    Stages 1, 2 and 3 differ only by the objective's weights and by which components exist, so every method
    and stage uses this one class; methods plug in through :class:`~common.tasks.DiscriminativeTask`.
    As a :class:`~monai.engines.SupervisedTrainer` it keeps ``network``, ``optimizer``, ``train_handlers`` and
    ``max_epochs`` where MONAI handlers, bundle properties and MONAI Label expect them.

    Args:
        device: device of the run.
        max_epochs: epochs to train.
        train_data_loader: loader of batch dicts (``image``, ``target`` and task keys).
        network: the :class:`~common.networks.UnitedModel`, possibly wrapped in DistributedDataParallel.
        optimizer: the generator optimizer.
        objective: the stage's :class:`~common.engines.UnitedObjective` (task, weights, adversary, losses).
        critic_optimizer: the adversary's optimizer, or a callable building it from parameters
            (``functools.partial(torch.optim.NAdam, lr=...)``, as ``_mode_: callable`` in a config).
            Required when the adversarial term is active.
        critic_steps: critic updates per generator step.
        freeze: names of components (``encoder``, ``head``, ``decoder``) kept fixed: no gradient, eval mode.
            Only for an unwrapped network (DistributedDataParallel must be built after freezing).
        epoch_length: iterations per epoch (default: the loader's length).
        non_blocking: non-blocking host-to-device copies.
        prepare_batch: batch preparation; the default moves every tensor of the dict to ``device``.
        train_handlers: MONAI/Ignite handlers.
        amp: mixed precision (CUDA only; ignored with a warning-free no-op on CPU).
        kwargs: further :class:`~monai.engines.SupervisedTrainer` arguments.

    Output of every iteration (``engine.state.output``): floats ``loss``, ``loss_dis``, ``loss_res``,
    ``loss_adv`` (unweighted terms; 0.0 when inactive), ``loss_critic`` (0.0 without adversary) and the task's
    and critic's diagnostics. Their epoch means are in ``engine.state.metrics`` under the same names.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable,
        network: nn.Module,
        optimizer: Optimizer,
        objective: UnitedObjective,
        critic_optimizer: Optimizer | Callable[[Iterable[nn.Parameter]], Optimizer] | None = None,
        critic_steps: int = 1,
        freeze: Sequence[str] = (),
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable = prepare_ssl_batch,
        train_handlers: Sequence | None = None,
        amp: bool = False,
        **kwargs: Any,
    ) -> None:
        if critic_steps < 1:
            raise ValueError(f"critic_steps must be >= 1, got {critic_steps}.")
        kwargs.setdefault("decollate", False)
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=objective.loss,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=prepare_batch,
            train_handlers=None,  # registered last, once the adversary and objective exist
            amp=amp,
            **kwargs,
        )
        model = unwrap(network)
        if freeze and model is not network:
            raise ValueError(
                f"freeze={list(freeze)} with a wrapped network: DistributedDataParallel registers the parameters that "
                "require grad when it is built, so freeze them on `network_def` in `initialize`, before the wrap."
            )
        objective.check_model(model)
        self.objective = objective.to(self.state.device)
        self.critic_steps = critic_steps
        self.adversary = objective.adversary
        if self.adversary is not None:
            if critic_optimizer is None:
                raise ValueError("the adversarial term is active: pass critic_optimizer.")
            if not isinstance(critic_optimizer, Optimizer):
                critic_optimizer = critic_optimizer(self.adversary.parameters())
            broadcast_module(self.adversary)
        self.critic_optimizer = critic_optimizer if self.adversary is not None else None
        self.frozen = self._freeze(model, freeze)
        use_scaler = bool(amp) and self.state.device.type == "cuda"
        self.generator_scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.critic_scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        for key in LOSS_KEYS:
            Average(output_transform=lambda out, k=key: out[k], device="cpu").attach(self, key)
        if train_handlers:
            self._register_handlers(train_handlers)

    def _freeze(self, model: nn.Module, names: Sequence[str]) -> list[nn.Module]:
        frozen = []
        for name in names:
            module = getattr(model, name, None)
            if module is None:
                raise ValueError(f"cannot freeze {name!r}: the network has no such component.")
            module.requires_grad_(False)
            frozen.append(module)
        return frozen

    def checkpoint_objects(self) -> dict[str, Any]:
        """Every object a resumable checkpoint needs, by name (only those that exist in this stage)."""
        objects: dict[str, Any] = {"trainer": self, "network": unwrap(self.network), "optimizer": self.optimizer}
        if self.adversary is not None:
            objects.update(adversary=self.adversary, critic_optimizer=self.critic_optimizer)
        task = self.objective.task
        if task is not None and len(task.state_dict()) > 0:
            objects["task"] = task
        if self.generator_scaler.is_enabled():
            objects.update(generator_scaler=self.generator_scaler, critic_scaler=self.critic_scaler)
        return objects

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.state.device.type, enabled=self.generator_scaler.is_enabled(), **self.amp_kwargs)

    def _critic_steps(self, real: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor) -> dict[str, float]:
        critic, optimizer = self.adversary, self.critic_optimizer
        critic.train()
        for _ in range(self.critic_steps):
            optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                loss, logs = self.objective.adversarial_loss.critic_loss(critic, real, fake, condition)
            self.critic_scaler.scale(loss).backward()
            average_gradients(critic)
            self.critic_scaler.step(optimizer)
            self.critic_scaler.update()
        return {"loss_critic": loss.item(), **logs}

    def _iteration(self, engine: UnitedTrainer, batchdata: dict[str, Any]) -> dict[str, float]:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        objective = engine.objective
        engine.network.train()
        for module in engine.frozen:
            module.eval()

        with engine._autocast():
            outputs = engine.network(batch["image"])
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)

        logs: dict[str, float] = {"loss_critic": 0.0}
        if engine.adversary is not None:
            logs.update(engine._critic_steps(batch["target"], outputs["reconstruction"].detach(), batch["image"]))

        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with engine._autocast():
            terms, term_logs = objective.generator_terms(outputs, batch)
            loss = objective.loss(terms)
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        engine.generator_scaler.scale(loss).backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        engine.generator_scaler.step(engine.optimizer)
        engine.generator_scaler.update()
        if objective.task is not None:
            objective.task.after_step(unwrap(engine.network))
        engine.fire_event(IterationEvents.MODEL_COMPLETED)

        output = objective.report(loss, terms)
        output.update(logs)
        output.update(term_logs)
        engine.state.output = output
        return output
