"""The stage-aware trainer: one Ignite engine for every stage and every method of the United framework."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from ignite.engine import EventEnum, Events
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from torch import nn
from torch.optim import Optimizer

from common.engines.batch import prepare_ssl_batch
from common.engines.distributed import average_gradients, broadcast_module, unwrap
from common.engines.objective import UnitedObjective
from common.engines.iteration_output import IterationOutput
from common.engines.output_means import OutputMeans
from common.engines.random_state import RandomStates
from common.tasks import Restoration

__all__ = ["NonFiniteLossError", "UnitedEvents", "UnitedTrainer", "frozen_components"]

SCHEDULER_INTERVALS = ("epoch", "iteration")
UPDATE_ORDERS = ("critic_first", "generator_first")


def frozen_components(model: nn.Module) -> list[nn.Module]:
    """The components of ``model`` whose parameters all have ``requires_grad=False`` (kept in eval mode in training).

    Freeze components with :func:`common.networks.freeze` on the bare network, before any DDP wrap.
    """
    components = model.components() if hasattr(model, "components") else {}
    return [m for m in components.values() if any(True for _ in m.parameters()) and not any(p.requires_grad for p in m.parameters())]


class UnitedEvents(EventEnum):
    """Events of a United iteration beyond MONAI's ``IterationEvents`` (for profiling: ``tools/benchmark.py``)."""

    CRITIC_COMPLETED = "critic_completed"  # after the critic steps (fired every iteration, even without a critic)


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite: training stops, the last good checkpoint stays the newest."""


def _channels_last(tensor: Any) -> Any:
    """A floating-point image batch ``(B, C, H, W)`` or ``(B, C, D, H, W)`` in channels-last layout; others unchanged."""
    if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and tensor.ndim in (4, 5):
        return tensor.contiguous(memory_format=torch.channels_last if tensor.ndim == 4 else torch.channels_last_3d)
    return tensor


def _to_channels_last(module: nn.Module) -> nn.Module:
    """Store the module's 4D/5D (conv) weights channels-last, in place (``nn.Module.to(memory_format=...)`` takes
    one format, so 2D and 3D weights are converted separately)."""
    for param in module.parameters():
        if param.ndim in (4, 5):
            param.data = _channels_last(param.data)
    return module


def _built(factory: Any, argument: Any) -> Any:
    """An optimizer or scheduler given as an object, or as a callable building it (``_mode_: callable``)."""
    if factory is None or isinstance(factory, (Optimizer, torch.optim.lr_scheduler.LRScheduler)):
        return factory
    return factory(argument)


class UnitedTrainer(SupervisedTrainer):
    """Discriminative + restorative + adversarial training in one iteration (Guo et al., MedIA 2024).

    Per iteration:

    1. the task runs the generator (``network``: encoder, head and, from stage 2, decoder) on the batch
       (:meth:`~common.tasks.DiscriminativeTask.run`; by default once on ``image``), returning the model outputs and
       the restorations (prediction, target, critic condition);
    2. when the adversarial term is active, the critic takes ``critic_steps`` updates with its own optimizer, each
       restoration's target being "real" and its detached prediction "fake", both with the restoration's condition;
    3. the generator takes one step on ``w_dis * L_dis + w_res * L_res + w_adv * L_adv`` with the critic frozen;
    4. the task updates its state (``task.after_step``), e.g. momentum encoders and queues.

    With ``update_order="generator_first"`` steps 2 and 3 swap (DiRA updates the generator against the current
    critic, then the critic on the same detached restorations). With ``generator_interval = n > 1`` (and an
    adversary) every iteration takes a fresh batch and a critic step,
    and the generator steps on every n-th iteration only: the original 5:1 critic:generator ratio, each critic
    step on new data. Stages 1, 2 and 3 differ only by the objective's weights and by which components exist, so
    every method and stage uses this one class; methods plug in through the task. As a
    :class:`~monai.engines.SupervisedTrainer` it keeps ``network``, ``optimizer``, ``train_handlers`` and
    ``max_epochs`` where MONAI handlers, bundle properties and MONAI Label expect them.

    Args:
        device: device of the run.
        max_epochs: epochs to train.
        train_data_loader: loader of batch dicts (``image``, ``target`` and task keys).
        network: the model (e.g. :class:`~common.networks.UnitedModel`), possibly DistributedDataParallel-wrapped.
        optimizer: the generator optimizer.
        objective: the stage's :class:`~common.engines.UnitedObjective` (task, weights, adversary, losses).
        critic_optimizer: the adversary's optimizer, or a callable building it from parameters
            (``functools.partial(torch.optim.NAdam, lr=...)``, as ``_mode_: callable`` in a config).
            Required when the adversarial term is active.
        critic_steps: critic updates per iteration, on the same batch.
        generator_interval: the generator steps on every ``generator_interval``-th iteration (adversarial stages).
        lr_scheduler: the generator's learning-rate scheduler, or a callable building it from the optimizer.
        critic_lr_scheduler: a callable building the critic's scheduler from the critic optimizer
            (e.g. ``StepLR`` with ``_mode_: callable``), or ``None``.
        scheduler_interval: step the schedulers every ``"epoch"`` or every ``"iteration"``.
        max_grad_norm: clip the generator's gradient norm to this value (``None``: no clipping).
        critic_max_grad_norm: clip the critic's gradient norm to this value (``None``: no clipping).
        update_order: ``"critic_first"`` (United: the critic steps, then the generator) or ``"generator_first"``
            (DiRA: the generator steps against the current critic, then the critic).
        epoch_length: iterations per epoch (default: the loader's length).
        non_blocking: non-blocking host-to-device copies.
        prepare_batch: batch preparation; the default moves every tensor of the dict to ``device``.
        train_handlers: MONAI/Ignite handlers.
        amp: mixed precision: autocast (bfloat16 on CPU by default, float16 on CUDA) and, with float16 (CUDA, or
            CPU with ``amp_kwargs={"dtype": torch.float16}``), separate gradient scalers for the generator and the
            critic, saved in the checkpoint; the critic's scaler also scales the gradient penalty's inner gradient
            (PyTorch's AMP recipe for gradient penalties, :func:`common.losses.gradient_penalty`).
        compile: compile the model's components and the adversary in place with :meth:`torch.nn.Module.compile`
            (``torch.compile``; parameter names, checkpoints and DDP wrapping stay as they are). MONAI's own
            ``compile`` option wraps the network instead, which the components' direct calls would bypass.
        compile_kwargs: ``torch.compile`` arguments (e.g. ``{"backend": "eager"}``, ``{"mode": "max-autotune"}``).
        channels_last: store conv weights and image batches channels-last (``torch.channels_last_3d`` for 3D,
            ``torch.channels_last`` for 2D), the layout cuDNN's fastest fp16/bf16 convolution kernels use.
        kwargs: further :class:`~monai.engines.SupervisedTrainer` arguments (e.g. ``amp_kwargs={"dtype": ...}``).

    Output of every iteration (``engine.state.output``): floats ``loss``, ``loss_dis``, ``loss_res``,
    ``loss_adv`` (unweighted terms; 0.0 when inactive), ``loss_critic`` (0.0 without adversary), the critic's
    diagnostics, the task's (``dis_<name>``) and the learning rates (``lr``, ``critic_lr``). Their epoch means are in ``engine.state.metrics`` under the same
    names. A NaN or infinite loss term stops the run with :class:`NonFiniteLossError` naming the term, the epoch and
    the iteration, before any optimizer step on it; nothing is saved, so the last good checkpoint stays the newest.
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
        generator_interval: int = 1,
        lr_scheduler: Any = None,
        critic_lr_scheduler: Callable[[Optimizer], Any] | None = None,
        scheduler_interval: str = "epoch",
        max_grad_norm: float | None = None,
        critic_max_grad_norm: float | None = None,
        update_order: str = "critic_first",
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable = prepare_ssl_batch,
        train_handlers: Sequence | None = None,
        amp: bool = False,
        compile: bool = False,
        compile_kwargs: dict[str, Any] | None = None,
        channels_last: bool = False,
        **kwargs: Any,
    ) -> None:
        if critic_steps < 1 or generator_interval < 1:
            raise ValueError(f"critic_steps and generator_interval must be >= 1, got {critic_steps}, {generator_interval}.")
        if update_order not in UPDATE_ORDERS:
            raise ValueError(f"update_order must be one of {UPDATE_ORDERS}, got {update_order!r}.")
        if scheduler_interval not in SCHEDULER_INTERVALS:
            raise ValueError(f"scheduler_interval must be one of {SCHEDULER_INTERVALS}, got {scheduler_interval!r}.")
        kwargs.setdefault("decollate", False)
        kwargs["event_names"] = [*(kwargs.get("event_names") or []), UnitedEvents]
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
            train_handlers=None,  # registered last, once the adversary, task state and schedulers exist
            amp=amp,
            **kwargs,
        )
        model = unwrap(network)
        objective.check_model(model)
        self.objective = objective.to(self.state.device)
        self.channels_last = channels_last
        if channels_last:
            _to_channels_last(model)
            if objective.adversary is not None:
                _to_channels_last(objective.adversary)
            self.prepare_batch = self._channels_last_batch(self.prepare_batch)
        self.compiled = compile
        if compile:
            components = model.components() if hasattr(model, "components") else {"network": model}
            for module in [*components.values(), *([objective.adversary] if objective.adversary is not None else [])]:
                module.compile(**(compile_kwargs or {}))
        self.critic_steps = critic_steps
        self.generator_interval = generator_interval
        self.max_grad_norm = max_grad_norm
        self.critic_max_grad_norm = critic_max_grad_norm
        self.update_order = update_order
        self.random_states = RandomStates(getattr(getattr(train_data_loader, "dataset", None), "transform", None))
        self.adversary = objective.adversary
        if self.adversary is not None:
            if critic_optimizer is None:
                raise ValueError("the adversarial term is active: pass critic_optimizer.")
            critic_optimizer = _built(critic_optimizer, self.adversary.parameters())
            broadcast_module(self.adversary)
        self.critic_optimizer = critic_optimizer if self.adversary is not None else None
        self.lr_scheduler = _built(lr_scheduler, optimizer)
        self.critic_lr_scheduler = _built(critic_lr_scheduler, self.critic_optimizer) if self.critic_optimizer else None
        self.task = objective.task
        if self.task is not None:
            self.task.setup(model)
            broadcast_module(self.task)
            self._check_task_state(optimizer)
        self.frozen = frozen_components(model)
        self.autocast_dtype = self.amp_kwargs.get("dtype", torch.float16 if self.state.device.type == "cuda" else torch.bfloat16)
        use_scaler = bool(amp) and self.autocast_dtype == torch.float16
        self.generator_scaler = torch.amp.GradScaler(self.state.device.type, enabled=use_scaler)
        self.critic_scaler = torch.amp.GradScaler(self.state.device.type, enabled=use_scaler)
        if use_scaler and hasattr(objective.adversarial_loss, "grad_scaler"):
            objective.adversarial_loss.grad_scaler = self.critic_scaler  # the penalty's AMP recipe
        OutputMeans().attach(self, "output_means")
        event = Events.EPOCH_COMPLETED if scheduler_interval == "epoch" else Events.ITERATION_COMPLETED
        self.add_event_handler(event, self._step_schedulers)
        if train_handlers:
            self._register_handlers(train_handlers)

    @staticmethod
    def _channels_last_batch(prepare: Callable) -> Callable:
        def prepare_channels_last(*args: Any, **kwargs: Any) -> dict[str, Any]:
            return {k: _channels_last(v) for k, v in prepare(*args, **kwargs).items()}

        return prepare_channels_last

    def _check_task_state(self, optimizer: Optimizer) -> None:
        """Refuse trainable task parameters and task tensors in the optimizer (EMA copies, queues)."""
        trainable = [name for name, p in self.task.named_parameters() if p.requires_grad]
        if trainable:
            raise ValueError(
                f"{type(self.task).__name__} has parameters that require gradients but are not part of the model, so "
                f"neither the optimizer nor DistributedDataParallel sees them: {trainable[:5]}. Put trainable parts "
                "(projection heads, predictors) in the model (e.g. as its `head`); keep EMA copies frozen "
                "(requires_grad_(False))."
            )
        task_tensors = {id(t) for t in self.task.parameters()} | {id(t) for t in self.task.buffers()}
        optimised = [p for group in optimizer.param_groups for p in group["params"] if id(p) in task_tensors]
        if optimised:
            raise ValueError(f"the optimizer updates {len(optimised)} tensors of the task's state (EMA copies, queues).")

    def checkpoint_objects(self) -> dict[str, Any]:
        """Every object a resumable checkpoint needs, by name (only those that exist in this stage)."""
        objects: dict[str, Any] = {
            "trainer": self,
            "network": unwrap(self.network),
            "optimizer": self.optimizer,
            "random_states": self.random_states,
        }
        if self.lr_scheduler is not None:
            objects["lr_scheduler"] = self.lr_scheduler
        if self.adversary is not None:
            objects.update(adversary=self.adversary, critic_optimizer=self.critic_optimizer)
            if self.critic_lr_scheduler is not None:
                objects["critic_lr_scheduler"] = self.critic_lr_scheduler
        if self.task is not None and len(self.task.state_dict()) > 0:
            objects["task"] = self.task
        if self.generator_scaler.is_enabled():
            objects.update(generator_scaler=self.generator_scaler, critic_scaler=self.critic_scaler)
        return objects

    def _learning_rates(self) -> dict[str, float]:
        rates = {"lr": self.optimizer.param_groups[0]["lr"]}
        if self.critic_optimizer is not None:
            rates["critic_lr"] = self.critic_optimizer.param_groups[0]["lr"]
        return rates

    def _step_schedulers(self) -> None:
        for scheduler in (self.lr_scheduler, self.critic_lr_scheduler):
            if scheduler is not None:
                scheduler.step()

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.state.device.type, dtype=self.autocast_dtype, enabled=bool(self.amp))

    def _train_modes(self) -> None:
        self.network.train()
        if self.task is not None:
            self.task.train()
        for module in self.frozen:
            module.eval()

    def _check_finite(self, named: dict[str, torch.Tensor]) -> None:
        bad = {k: v.item() for k, v in named.items() if not bool(torch.isfinite(v.detach()).all())}
        if bad:
            terms = ", ".join(f"{k} = {v}" for k, v in bad.items())
            raise NonFiniteLossError(
                f"non-finite loss at epoch {self.state.epoch}, iteration {self.state.iteration}: {terms}. Nothing was "
                "updated or saved from this iteration; the newest checkpoint in the stage folder is the last good one. "
                "Check the data (tools/check_data.py finds NaN voxels) or lower the learning rate / set max_grad_norm."
            )

    def _clip(self, scaler: torch.amp.GradScaler, optimizer: Optimizer, params: Iterable[nn.Parameter], norm: float | None) -> None:
        if norm is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(list(params), norm)

    def _critic_steps(self, restorations: Sequence[Restoration]) -> dict[str, float]:
        critic, optimizer = self.adversary, self.critic_optimizer
        critic.train()
        for _ in range(self.critic_steps):
            optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                loss, logs = self.objective.critic_loss(restorations)
            if self.critic_scaler.is_enabled():  # an overflowing scale is the scaler's business (step skipped)
                self._check_finite({k: torch.tensor(logs[k]) for k in ("critic_real", "critic_fake") if k in logs})
            else:
                self._check_finite({"loss_critic": loss})
            self.critic_scaler.scale(loss).backward()
            average_gradients(critic)
            self._clip(self.critic_scaler, optimizer, critic.parameters(), self.critic_max_grad_norm)
            self.critic_scaler.step(optimizer)
            self.critic_scaler.update()
        return {"loss_critic": loss.item(), **logs}

    def _iteration(self, engine: UnitedTrainer, batchdata: dict[str, Any]) -> IterationOutput:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        objective = engine.objective
        generator_step = engine.adversary is None or (engine.state.iteration - 1) % engine.generator_interval == 0
        engine._train_modes()

        with torch.set_grad_enabled(generator_step), engine._autocast():
            outputs = objective.run(engine.network, batch)
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)

        logs: dict[str, float] = {"loss_critic": 0.0}
        critic_first = engine.update_order == "critic_first"
        if engine.adversary is not None and critic_first:
            logs.update(engine._critic_steps(outputs.restorations))
        engine.fire_event(UnitedEvents.CRITIC_COMPLETED)

        if generator_step:
            engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
            with engine._autocast():
                loss, terms, term_logs = objective.generator_loss(outputs, batch)
            engine.fire_event(IterationEvents.LOSS_COMPLETED)
            engine._check_finite({"loss": loss, **{f"loss_{k}": v for k, v in terms.items()}})
            engine.generator_scaler.scale(loss).backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine._clip(engine.generator_scaler, engine.optimizer, engine.network.parameters(), engine.max_grad_norm)
            engine.generator_scaler.step(engine.optimizer)
            engine.generator_scaler.update()
            if engine.task is not None:
                engine.task.after_step(unwrap(engine.network))
        else:  # a critic-only iteration: the generator loss is reported, not optimised
            with torch.no_grad(), engine._autocast():
                loss, terms, term_logs = objective.generator_loss(outputs, batch)
        if engine.adversary is not None and not critic_first:
            logs.update(engine._critic_steps(outputs.restorations))
        engine.fire_event(IterationEvents.MODEL_COMPLETED)

        output = objective.report(loss, terms)
        output.update(logs)
        output.update(term_logs)
        output.update(engine._learning_rates())
        engine.state.output = IterationOutput(output)
        engine.state.restorations = [r.detached() for r in outputs.restorations]  # for image panels
        return engine.state.output
