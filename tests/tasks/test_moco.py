"""MoCo: InfoNCE of the query against its key and the queue, the key network as an EMA the optimizer never
touches, the keys enqueued after the step, validation leaving the state alone."""

from __future__ import annotations

import pytest
import torch

from common.engines import UnitedObjective
from common.losses import InfoNCELoss
from common.networks import GenesisDecoder, GenesisEncoder, ProjectionHead, UnitedModel
from common.tasks import MoCoTask


def _model(decoder: bool = True) -> UnitedModel:
    torch.manual_seed(0)
    return UnitedModel(GenesisEncoder(3, 1, 2, 3), ProjectionHead(3, 16, 16, 8), GenesisDecoder(3, 1, 2, 3) if decoder else None)


def _batch(n: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    image = torch.rand(n, 1, 16, 16, 16, generator=g)
    return {"image": image, "view2": image.flip(2), "target": torch.rand(n, 1, 16, 16, 16, generator=g)}


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _step(model, objective, optimizer, batch):
    outputs = objective.run(model, batch)
    loss, terms, logs = objective.generator_loss(outputs, batch)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    objective.task.after_step(model)
    return outputs, terms, logs


def test_loss_is_info_nce_against_the_queue_and_the_restoration_target_is_clean() -> None:
    model, task = _model(), MoCoTask(queue_size=16, temperature=0.2)
    objective = UnitedObjective(task, w_dis=1.0, w_res=10.0)
    task.setup(model)
    batch = _batch()
    outputs = objective.run(model, batch)
    _, terms, logs = objective.generator_loss(outputs, batch)
    q, k = outputs.model["query"], outputs.model["key"]
    torch.testing.assert_close(terms["dis"], InfoNCELoss(0.2)(q, k, task.queue.features))
    assert not k.requires_grad and q.requires_grad
    (restoration,) = outputs.restorations
    assert restoration.target is batch["target"] and restoration.condition is batch["image"]
    assert 0.0 <= logs["dis_retrieval"] <= 1.0 and 0.0 <= logs["dis_accuracy"] <= 1.0


def test_key_network_is_the_ema_of_the_updated_model_and_keys_are_enqueued() -> None:
    model, task = _model(), MoCoTask(queue_size=10, momentum=0.9)
    objective = UnitedObjective(task, w_dis=1.0, w_res=10.0)
    task.setup(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not optimised & {id(t) for t in task.state_dict(keep_vars=True).values()}
    key_before = {n: p.clone() for n, p in task.key_network.named_parameters()}
    queue_before = task.queue.ordered()
    outputs, _, _ = _step(model, objective, optimizer, _batch(4))
    online = dict(model.named_parameters())
    changed = 0
    for name, param in task.key_network.named_parameters():  # key = 0.9 key + 0.1 online (after the optimizer step)
        torch.testing.assert_close(param, 0.9 * key_before[name] + 0.1 * online[name].detach(), rtol=0, atol=1e-6)
        changed += int(not torch.equal(param, key_before[name]))
    assert changed > 0
    # the four keys of this step are the newest entries; the six oldest random entries remain, in order
    torch.testing.assert_close(task.queue.ordered()[-4:], outputs.model["key"])
    torch.testing.assert_close(task.queue.ordered()[:6], queue_before[4:])
    assert int(task.queue.pointer) == 4


def test_validation_changes_no_task_state_and_uses_no_shuffle() -> None:
    model, task = _model(), MoCoTask(queue_size=16)
    objective = UnitedObjective(task, w_dis=1.0, w_res=10.0)
    task.setup(model)
    before = _state(task)
    task.eval(), model.eval()
    with torch.no_grad():
        outputs = objective.run(model, _batch())
        objective.generator_loss(outputs, _batch())
    after = _state(task)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert task._pending is None  # nothing to enqueue from an evaluation
    with torch.no_grad():
        torch.testing.assert_close(outputs.model["key"], task.key_network["head"](task.key_network["encoder"](_batch()["view2"])[-1]))


def test_stage1_restores_nothing_and_a_small_queue_is_refused() -> None:
    model, task = _model(decoder=False), MoCoTask(queue_size=3)
    objective = UnitedObjective(task, w_dis=1.0)
    task.setup(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    task.eval()
    outputs = objective.run(model, _batch(4))  # validation enqueues nothing: any batch size
    assert outputs.restorations == []
    task.train()
    before = {n: p.clone() for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match="queue_size"):  # refused in the forward pass, before any optimizer step
        _step(model, objective, optimizer, _batch(4))
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    with pytest.raises(KeyError, match="view2"):
        objective.run(model, {"image": _batch()["image"]})
