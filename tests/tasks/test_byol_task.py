"""BYOL: the online network runs on both views with gradients, the target follows the cosine momentum schedule,
each view is restored against its own clean target."""

from __future__ import annotations

import pytest
import torch

from common.engines import UnitedObjective
from common.losses import BYOLLoss
from common.networks import MLP, BYOLModel, GenesisDecoder, GenesisEncoder, ProjectionHead
from common.tasks import BYOLTask, cosine_schedule


def _model(decoder: bool = True) -> BYOLModel:
    torch.manual_seed(0)
    return BYOLModel(
        GenesisEncoder(3, 1, 2, 3),
        ProjectionHead(3, 16, 16, 8, batch_norm=True),
        MLP(8, 16, 8, batch_norm=True),
        GenesisDecoder(3, 1, 2, 3) if decoder else None,
    )


def _batch(n: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    image, view2 = torch.rand(n, 1, 16, 16, 16, generator=g), torch.rand(n, 1, 16, 16, 16, generator=g)
    return {"image": image, "view2": view2, "target": image.flip(2), "target2": view2.flip(3)}


def test_both_views_run_through_the_network_with_gradients() -> None:
    model, task = _model(), BYOLTask(max_steps=10)
    task.setup(model)
    calls = []
    model.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0]))
    batch = _batch()
    outputs = UnitedObjective(task, w_dis=1.0, w_res=1.0).run(model, batch)
    assert len(calls) == 2 and calls[0] is batch["image"] and calls[1] is batch["view2"]
    assert outputs.model["p1"].requires_grad and outputs.model["p2"].requires_grad
    assert not outputs.model["z1"].requires_grad and not outputs.model["z2"].requires_grad
    loss, _ = task(outputs.model, batch)
    torch.testing.assert_close(loss, BYOLLoss()(outputs.model["p1"], outputs.model["p2"], outputs.model["z1"], outputs.model["z2"]))
    # the view-2 branch contributes: its prediction gets a gradient
    grad = torch.autograd.grad(loss, outputs.model["p2"])[0]
    assert grad.abs().sum() > 0
    first, second = outputs.restorations
    assert first.target is batch["target"] and first.condition is batch["image"]
    assert second.target is batch["target2"] and second.condition is batch["view2"]


def test_target_follows_the_cosine_schedule_after_each_step() -> None:
    model, task = _model(), BYOLTask(max_steps=4, base_momentum=0.5)
    objective = UnitedObjective(task, w_dis=1.0)
    task.setup(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(5):
        tau = cosine_schedule(step, 4, 0.5, 1.0)
        assert task.momentum == tau
        before = {n: p.clone() for n, p in task.target_network.named_parameters()}
        outputs = objective.run(model, _batch())
        loss, _, logs = objective.generator_loss(outputs, _batch())
        assert logs["dis_momentum"] == tau
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        task.after_step(model)
        online = dict(model.named_parameters())
        for name, param in task.target_network.named_parameters():
            torch.testing.assert_close(param, tau * before[name] + (1 - tau) * online[name].detach(), rtol=0, atol=1e-6)
        assert int(task.step) == step + 1
    assert tau == 1.0  # the last step is past max_steps: the target no longer moves
    assert "predictor" not in dict(task.target_network.named_children())  # BYOL's asymmetry


def test_validation_changes_no_task_state() -> None:
    model, task = _model(decoder=False), BYOLTask(max_steps=10)
    task.setup(model)
    before = {k: v.clone() for k, v in task.state_dict().items()}
    task.eval(), model.eval()
    with torch.no_grad():
        outputs = task.run(model, _batch())
        task(outputs.model, _batch())
    assert outputs.restorations == []
    assert all(torch.equal(before[k], v) for k, v in task.state_dict().items())


def test_one_pair_per_step_is_refused_with_batch_norm_heads() -> None:
    model, task = _model(), BYOLTask(max_steps=10)
    task.setup(model)
    one = {k: v[:1] for k, v in _batch().items()}
    with pytest.raises(ValueError, match="at least 2 pairs"):
        task.run(model, one)
    task.eval(), model.eval()
    with torch.no_grad():
        task.run(model, one)  # evaluation uses the running statistics: one pair is fine
