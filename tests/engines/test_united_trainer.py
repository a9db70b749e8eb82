"""UnitedTrainer: each stage updates exactly the components it should; schedules, ratios, outputs; invalid set-ups."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from ignite.engine import Events

from common.engines import UnitedObjective, UnitedTrainer
from common.losses import LeastSquaresGANLoss
from common.networks import ClassificationHead, ConditionalPatchCritic, GenesisDecoder, GenesisEncoder, UnitedModel, freeze
from common.tasks import DiscriminativeTask, PretextClassificationTask

SIZE = (16, 16, 16)
LOSS_KEYS = {"loss", "loss_dis", "loss_res", "loss_adv", "loss_critic"}


def _batches(n: int = 2, batch: int = 2) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.rand(batch, 1, *SIZE, generator=g),
            "target": torch.rand(batch, 1, *SIZE, generator=g),
            "label": torch.randint(0, 4, (batch,), generator=g),
        }
        for _ in range(n)
    ]


def _model(decoder: bool) -> UnitedModel:
    return UnitedModel(
        GenesisEncoder(3, 1, 2, 3),
        ClassificationHead(3, 16, 4, conv_channels=None, hidden_features=8),
        GenesisDecoder(3, 1, 2, 3) if decoder else None,
    )


def _trainer(stage: int, frozen: tuple = (), adversarial_loss=None, task=None, batches: int = 2, **kwargs) -> UnitedTrainer:
    weights = {1: (1.0, 0.0, 0.0), 2: (1.0, 100.0, 0.0), 3: (1.0, 100.0, 1.0)}[stage]
    model = freeze(_model(decoder=stage >= 2), frozen)
    critic = ConditionalPatchCritic(3, 1, 1, base_channels=2, num_levels=3) if stage == 3 else None
    task = task if task is not None else PretextClassificationTask()
    objective = UnitedObjective(task, *weights, adversary=critic, adversarial_loss=adversarial_loss)
    kwargs.setdefault("max_epochs", 1)
    return UnitedTrainer(
        device="cpu",
        train_data_loader=_batches(batches),
        network=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        objective=objective,
        critic_optimizer=functools.partial(torch.optim.Adam, lr=1e-2),
        **kwargs,
    )


def _snapshot(module: torch.nn.Module | None) -> dict | None:
    return None if module is None else copy.deepcopy(module.state_dict())


def _changed(before: dict, module: torch.nn.Module) -> bool:
    after = module.state_dict()
    return any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_each_stage_updates_exactly_its_components(stage: int) -> None:
    trainer = _trainer(stage)
    model = trainer.network
    before = {name: _snapshot(m) for name, m in model.components().items()}
    critic_before = _snapshot(trainer.adversary)
    trainer.run()
    assert set(model.components()) == {1: {"encoder", "head"}, 2: {"encoder", "head", "decoder"}}.get(
        stage, {"encoder", "head", "decoder"}
    )
    for name, snapshot in before.items():
        assert _changed(snapshot, getattr(model, name)), f"stage {stage}: {name} was not updated"
    if stage == 3:
        assert _changed(critic_before, trainer.adversary)
    else:
        assert trainer.adversary is None and trainer.critic_optimizer is None


def test_frozen_component_gets_no_gradient_and_keeps_its_statistics() -> None:
    trainer = _trainer(2, frozen=("encoder",))
    encoder_before = _snapshot(trainer.network.encoder)
    head_before = _snapshot(trainer.network.head)
    trainer.run()
    assert all(p.grad is None for p in trainer.network.encoder.parameters())
    assert not _changed(encoder_before, trainer.network.encoder)  # weights and BN running statistics
    assert _changed(head_before, trainer.network.head)


def test_generator_step_gives_the_critic_no_gradient() -> None:
    trainer = _trainer(3)
    batch = _batches(1)[0]
    outputs = trainer.objective.run(trainer.network, batch)
    loss, _, _ = trainer.objective.generator_loss(outputs, batch)
    loss.backward()
    assert all(p.grad is None for p in trainer.adversary.parameters())
    assert all(p.requires_grad for p in trainer.adversary.parameters())  # restored after the step
    assert any(p.grad is not None for p in trainer.network.decoder.parameters())


def test_critic_steps_give_the_generator_no_gradient() -> None:
    trainer = _trainer(3, critic_steps=3)
    batch = _batches(1)[0]
    logs = trainer._critic_steps(trainer.objective.run(trainer.network, batch).restorations)
    assert {"loss_critic", "critic_real", "critic_fake", "gradient_penalty"} <= set(logs)
    assert all(p.grad is None for p in trainer.network.parameters())


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_output_and_epoch_metrics(stage: int) -> None:
    trainer = _trainer(stage, adversarial_loss=LeastSquaresGANLoss() if stage == 3 else None)
    trainer.run()
    output = trainer.state.output
    assert LOSS_KEYS <= set(output) and "dis_accuracy" in output
    assert all(isinstance(v, float) for v in output.values())
    assert (output["loss_res"] > 0) == (stage >= 2)
    assert (output["loss_critic"] != 0) == (stage == 3)
    expected = output["loss_dis"] + 100 * output["loss_res"] + output["loss_adv"]
    assert output["loss"] == pytest.approx(expected, rel=1e-5)
    assert LOSS_KEYS | {"dis_accuracy"} <= set(trainer.state.metrics)  # task diagnostics get epoch means too
    if stage == 3:
        assert {"critic_real", "critic_fake"} <= set(trainer.state.metrics)


def test_checkpoint_objects_follow_the_stage() -> None:
    base = {"trainer", "network", "optimizer", "random_states"}
    assert set(_trainer(1).checkpoint_objects()) == base
    assert set(_trainer(3).checkpoint_objects()) == base | {"adversary", "critic_optimizer"}


def test_inconsistent_set_ups_raise() -> None:
    model = _model(decoder=False)
    optimizer = torch.optim.Adam(model.parameters())
    common = {"device": "cpu", "max_epochs": 1, "train_data_loader": _batches(), "network": model, "optimizer": optimizer}
    with pytest.raises(ValueError, match="need a decoder"):
        UnitedTrainer(**common, objective=UnitedObjective(PretextClassificationTask(), 1.0, 100.0))
    critic = ConditionalPatchCritic(3, base_channels=2, num_levels=3)
    model3 = _model(decoder=True)
    common.update(network=model3, optimizer=torch.optim.Adam(model3.parameters()))
    objective = UnitedObjective(PretextClassificationTask(), 1.0, 100.0, 1.0, adversary=critic)
    with pytest.raises(ValueError, match="critic_optimizer"):
        UnitedTrainer(**common, objective=objective)
    with pytest.raises(ValueError, match="critic_steps"):
        UnitedTrainer(**common, objective=objective, critic_optimizer=torch.optim.Adam(critic.parameters()), critic_steps=0)
    with pytest.raises(ValueError, match="generator_interval"):
        UnitedTrainer(**common, objective=objective, critic_optimizer=torch.optim.Adam(critic.parameters()), generator_interval=0)
    with pytest.raises(ValueError, match="scheduler_interval"):
        UnitedTrainer(**common, objective=UnitedObjective(PretextClassificationTask()), scheduler_interval="step")
    with pytest.raises(ValueError, match=r"cannot freeze \['adversary'\]"):
        freeze(model3, ["adversary"])
    with pytest.raises(ValueError, match="needs an adversary"):
        UnitedObjective(PretextClassificationTask(), 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="needs a discriminative task"):
        UnitedObjective(None, 1.0)


def test_generator_interval_steps_the_critic_every_iteration_and_the_generator_every_nth() -> None:
    counter = CountingTask()
    trainer = _trainer(3, task=counter, batches=6, generator_interval=3, critic_steps=1)
    critic_steps = []
    trainer.critic_optimizer.register_step_post_hook(lambda *_: critic_steps.append(trainer.state.iteration))
    generator_steps = []
    trainer.optimizer.register_step_post_hook(lambda *_: generator_steps.append(trainer.state.iteration))
    trainer.run()
    assert critic_steps == [1, 2, 3, 4, 5, 6]  # a fresh batch for every critic step
    assert generator_steps == [1, 4] and int(counter.steps) == 2  # after_step follows the generator steps only
    assert trainer.state.metrics["loss"] > 0  # critic-only iterations still report the generator loss


def test_both_learning_rates_follow_their_schedules_and_are_checkpointed() -> None:
    step_lr = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    trainer = _trainer(3, max_epochs=2, lr_scheduler=step_lr, critic_lr_scheduler=step_lr)
    trainer.run()
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 / 4)
    assert trainer.critic_optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 / 4)
    assert {"lr_scheduler", "critic_lr_scheduler"} <= set(trainer.checkpoint_objects())
    per_iteration = _trainer(1, lr_scheduler=step_lr, scheduler_interval="iteration")
    per_iteration.run()
    assert per_iteration.optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 / 4)  # 2 iterations


def test_cpu_autocast_runs_in_bfloat16() -> None:
    trainer = _trainer(3, amp=True)
    dtypes = set()
    trainer.network.encoder.register_forward_hook(lambda m, i, out: dtypes.add(out[-1].dtype))
    trainer.run()
    assert dtypes == {torch.bfloat16}
    assert not trainer.generator_scaler.is_enabled()  # gradient scaling is for float16 on CUDA only
    assert all(torch.isfinite(torch.tensor(v)) for v in trainer.state.output.values())


class CountingTask(PretextClassificationTask):
    """Cross-entropy plus a count of ``after_step`` calls kept as task state."""

    def build_state(self, model: torch.nn.Module) -> None:
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def after_step(self, model: torch.nn.Module) -> None:
        self.steps += 1


class TrainableStateTask(PretextClassificationTask):
    """Wrong on purpose: a trainable parameter the optimizer never sees."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))


def test_task_parameters_that_require_grad_are_refused() -> None:
    with pytest.raises(ValueError, match=r"require gradients.*\['scale'\]"):
        _trainer(1, task=TrainableStateTask())


def test_task_state_in_the_optimizer_is_refused() -> None:
    model = _model(decoder=False)
    task = CountingTask()
    task.setup(model)
    task.copy = torch.nn.Linear(2, 2).requires_grad_(False)
    optimizer = torch.optim.Adam(list(model.parameters()) + list(task.copy.parameters()))
    with pytest.raises(ValueError, match="task's state"):
        UnitedTrainer("cpu", 1, _batches(), model, optimizer, UnitedObjective(task))


def test_freeze_happens_before_the_wrap_and_holds_inside_it() -> None:
    model = freeze(_model(decoder=False), ["encoder"])
    wrapped = torch.nn.DataParallel(model)  # stands for DistributedDataParallel: the trainer unwraps both
    trainer = UnitedTrainer("cpu", 1, _batches(), wrapped, torch.optim.Adam(model.parameters()), UnitedObjective(CountingTask()))
    encoder_before = _snapshot(model.encoder)
    trainer.run()
    assert trainer.frozen == [model.encoder] and not model.encoder.training
    assert not _changed(encoder_before, model.encoder)


class NaNAfterOneStepTask(PretextClassificationTask):
    """Cross-entropy that becomes NaN at the second iteration, as a diverging run would."""

    def forward(self, outputs, batch):
        loss, logs = super().forward(outputs, batch)
        self.calls = getattr(self, "calls", 0) + 1
        return (loss * float("nan") if self.calls == 2 else loss), logs


def test_a_non_finite_loss_stops_the_run_naming_the_term_before_any_update() -> None:
    from common.engines.united_trainer import NonFiniteLossError

    trainer = _trainer(2, task=NaNAfterOneStepTask())
    params = {}
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: params.setdefault("w", {n: p.clone() for n, p in e.network.named_parameters()})
    )
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, iteration 2: loss = nan, loss_dis = nan"):
        trainer.run()
    assert all(torch.equal(p, params["w"][n]) for n, p in trainer.network.named_parameters())  # no step on the NaN


def test_gradient_clipping_bounds_the_update() -> None:
    clipped = _trainer(1, max_grad_norm=1e-3)
    norms = []

    def record(engine) -> None:
        norms.append(torch.nn.utils.get_total_norm([p.grad for p in engine.network.parameters() if p.grad is not None]).item())

    clipped.add_event_handler(Events.ITERATION_COMPLETED, record)
    clipped.run()
    assert max(norms) <= 1e-3 * 1.0001


def test_generator_first_steps_the_generator_against_the_critic_it_had() -> None:
    order = []
    trainer = _trainer(3, update_order="generator_first", batches=1)
    trainer.optimizer.register_step_post_hook(lambda *_: order.append("generator"))
    trainer.critic_optimizer.register_step_post_hook(lambda *_: order.append("critic"))
    trainer.run()
    assert order == ["generator", "critic"]
    with pytest.raises(ValueError, match="update_order"):
        _trainer(3, update_order="both")
