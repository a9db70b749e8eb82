"""The trainer's GPU options checked on CPU: float16 with two scalers, channels-last, torch.compile."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from ignite.engine import Events

from common.engines import UnitedObjective, UnitedTrainer
from common.networks import ClassificationHead, ConditionalPatchCritic, GenesisDecoder, GenesisEncoder, UnitedModel
from common.tasks import PretextClassificationTask


def _batches(n: int = 2) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [
        {"image": torch.rand(2, 1, 16, 16, 16, generator=g), "target": torch.rand(2, 1, 16, 16, 16, generator=g),
         "label": torch.randint(0, 4, (2,), generator=g)}
        for _ in range(n)
    ]  # fmt: skip


def _stage3(seed: int = 0, **kwargs) -> UnitedTrainer:
    torch.manual_seed(seed)
    model = UnitedModel(
        GenesisEncoder(3, 1, 2, 3), ClassificationHead(3, 16, 4, conv_channels=None, hidden_features=8), GenesisDecoder(3, 1, 2, 3)
    )
    critic = ConditionalPatchCritic(3, 1, 1, base_channels=2, num_levels=3)
    return UnitedTrainer(
        device="cpu", max_epochs=1, train_data_loader=_batches(), network=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        objective=UnitedObjective(PretextClassificationTask(), 1.0, 100.0, 1.0, adversary=critic),
        critic_optimizer=functools.partial(torch.optim.Adam, lr=1e-2), **kwargs,
    )  # fmt: skip


def _changed(before: dict, module: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items() if v.is_floating_point())


def test_float16_uses_separate_scalers_for_generator_and_critic_saved_for_resume() -> None:
    trainer = _stage3(amp=True, amp_kwargs={"dtype": torch.float16})
    gen, critic = trainer.generator_scaler, trainer.critic_scaler
    assert gen.is_enabled() and critic.is_enabled() and gen is not critic
    assert trainer.objective.adversarial_loss.grad_scaler is critic  # the penalty's AMP recipe uses the critic's
    for scaler in (gen, critic):  # as on resume; the default 2^16 overflows the critic's first float16 steps
        scaler.load_state_dict({**scaler.state_dict(), "scale": 16.0})
    before = {n: copy.deepcopy(m.state_dict()) for n, m in [("encoder", trainer.network.encoder), ("critic", trainer.adversary)]}
    trainer.run()
    assert _changed(before["encoder"], trainer.network.encoder) and _changed(before["critic"], trainer.adversary)
    objects = trainer.checkpoint_objects()
    assert objects["generator_scaler"] is gen and objects["critic_scaler"] is critic
    resumed = _stage3(amp=True, amp_kwargs={"dtype": torch.float16})
    gen.update(2.0**5), critic.update(2.0**3)  # distinct states, as after different overflow histories
    resumed.generator_scaler.load_state_dict(gen.state_dict())
    resumed.critic_scaler.load_state_dict(critic.state_dict())
    assert resumed.generator_scaler.get_scale() == 2.0**5 and resumed.critic_scaler.get_scale() == 2.0**3


def test_an_overflowing_critic_scale_skips_the_step_and_lowers_the_scale() -> None:
    trainer = _stage3(amp=True, amp_kwargs={"dtype": torch.float16})
    trainer.critic_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)  # scaled float16 gradients overflow
    trainer.objective.adversarial_loss.grad_scaler = trainer.critic_scaler
    trainer.state.max_epochs, trainer.state.epoch_length = 1, 1
    critic_before = copy.deepcopy(trainer.adversary.state_dict())
    trainer.run()  # no NonFiniteLossError: an overflow is the scaler's to handle
    assert not _changed(critic_before, trainer.adversary)
    assert trainer.critic_scaler.get_scale() < 2.0**40


def test_bfloat16_autocast_has_no_scalers() -> None:
    trainer = _stage3(amp=True)
    assert not trainer.generator_scaler.is_enabled() and trainer.objective.adversarial_loss.grad_scaler is None
    assert "generator_scaler" not in trainer.checkpoint_objects()


def _losses(trainer: UnitedTrainer) -> list[dict]:
    seen: list[dict] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(dict(e.state.output)))
    trainer.run()
    return seen


def test_channels_last_gives_the_same_step_with_channels_last_weights_and_inputs() -> None:
    reference = _losses(_stage3())
    trainer = _stage3(channels_last=True)
    layouts = []
    trainer.network.encoder.register_forward_pre_hook(
        lambda m, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last_3d))
    )
    conv = next(p for p in trainer.network.parameters() if p.ndim == 5 and p.shape[1] > 1 and p.shape[2] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last_3d) and not conv.is_contiguous()
    losses = _losses(trainer)
    assert layouts and all(layouts)
    for ref, out in zip(reference, losses):
        for key in ("loss", "loss_dis", "loss_res", "loss_adv", "loss_critic"):
            assert out[key] == pytest.approx(ref[key], rel=1e-3, abs=1e-5), key


def test_compile_compiles_each_component_in_place_and_trains_the_same() -> None:
    reference = _losses(_stage3())
    trainer = _stage3(compile=True, compile_kwargs={"backend": "eager"})  # dynamo traces; no C++ code generation
    model = trainer.network
    assert all(m._compiled_call_impl is not None for m in [*model.components().values(), trainer.adversary])
    assert set(model.state_dict()) == set(_stage3().network.state_dict())  # checkpoints unchanged
    losses = _losses(trainer)
    for ref, out in zip(reference, losses):
        assert out["loss"] == pytest.approx(ref["loss"], rel=1e-4) and out["loss_critic"] == pytest.approx(ref["loss_critic"], rel=1e-4)
