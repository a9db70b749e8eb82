"""UnitedTrainer: each stage updates exactly the components it should; outputs; invalid set-ups."""

from __future__ import annotations

import copy
import functools

import pytest
import torch

from common.engines import LOSS_KEYS, UnitedObjective, UnitedTrainer
from common.losses import LeastSquaresGANLoss
from common.networks import ClassificationHead, ConditionalPatchCritic, GenesisDecoder, GenesisEncoder, UnitedModel
from common.tasks import PretextClassificationTask

SIZE = (16, 16, 16)


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


def _trainer(stage: int, freeze: tuple = (), adversarial_loss=None, critic_steps: int = 1) -> UnitedTrainer:
    weights = {1: (1.0, 0.0, 0.0), 2: (1.0, 100.0, 0.0), 3: (1.0, 100.0, 1.0)}[stage]
    model = _model(decoder=stage >= 2)
    critic = ConditionalPatchCritic(3, 1, 1, base_channels=2, num_levels=3) if stage == 3 else None
    objective = UnitedObjective(PretextClassificationTask(), *weights, adversary=critic, adversarial_loss=adversarial_loss)
    return UnitedTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=_batches(),
        network=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        objective=objective,
        critic_optimizer=functools.partial(torch.optim.Adam, lr=1e-2),
        critic_steps=critic_steps,
        freeze=freeze,
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
    trainer = _trainer(2, freeze=("encoder",))
    encoder_before = _snapshot(trainer.network.encoder)
    head_before = _snapshot(trainer.network.head)
    trainer.run()
    assert all(p.grad is None for p in trainer.network.encoder.parameters())
    assert not _changed(encoder_before, trainer.network.encoder)  # weights and BN running statistics
    assert _changed(head_before, trainer.network.head)


def test_generator_step_gives_the_critic_no_gradient() -> None:
    trainer = _trainer(3)
    batch = _batches(1)[0]
    outputs = trainer.network(batch["image"])
    terms, _ = trainer.objective.generator_terms(outputs, batch)
    trainer.objective.loss(terms).backward()
    assert all(p.grad is None for p in trainer.adversary.parameters())
    assert all(p.requires_grad for p in trainer.adversary.parameters())  # restored after the step
    assert any(p.grad is not None for p in trainer.network.decoder.parameters())


def test_critic_steps_give_the_generator_no_gradient() -> None:
    trainer = _trainer(3, critic_steps=3)
    batch = _batches(1)[0]
    reconstruction = trainer.network(batch["image"])["reconstruction"]
    logs = trainer._critic_steps(batch["target"], reconstruction.detach(), batch["image"])
    assert {"loss_critic", "critic_real", "critic_fake", "gradient_penalty"} <= set(logs)
    assert all(p.grad is None for p in trainer.network.parameters())


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_output_and_epoch_metrics(stage: int) -> None:
    trainer = _trainer(stage, adversarial_loss=LeastSquaresGANLoss() if stage == 3 else None)
    trainer.run()
    output = trainer.state.output
    assert set(LOSS_KEYS) <= set(output) and "dis_accuracy" in output
    assert all(isinstance(v, float) for v in output.values())
    assert (output["loss_res"] > 0) == (stage >= 2)
    assert (output["loss_critic"] != 0) == (stage == 3)
    expected = output["loss_dis"] + 100 * output["loss_res"] + output["loss_adv"]
    assert output["loss"] == pytest.approx(expected, rel=1e-5)
    assert set(LOSS_KEYS) <= set(trainer.state.metrics)


def test_checkpoint_objects_follow_the_stage() -> None:
    assert set(_trainer(1).checkpoint_objects()) == {"trainer", "network", "optimizer"}
    assert set(_trainer(3).checkpoint_objects()) == {"trainer", "network", "optimizer", "adversary", "critic_optimizer"}


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
    with pytest.raises(ValueError, match="no such component"):
        UnitedTrainer(**common, objective=UnitedObjective(PretextClassificationTask()), freeze=("adversary",))
    with pytest.raises(ValueError, match="needs an adversary"):
        UnitedObjective(PretextClassificationTask(), 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="needs a discriminative task"):
        UnitedObjective(None, 1.0)


def test_freeze_refuses_a_wrapped_network() -> None:
    model = _model(decoder=False)
    wrapped = torch.nn.DataParallel(model)
    with pytest.raises(ValueError, match="before the wrap"):
        UnitedTrainer(
            device="cpu", max_epochs=1, train_data_loader=_batches(), network=wrapped,
            optimizer=torch.optim.Adam(model.parameters()), objective=UnitedObjective(PretextClassificationTask()),
            freeze=("encoder",),
        )
