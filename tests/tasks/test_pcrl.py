"""PCRL: four restorations, each against its own clean target (never the corrupted input), NCE against the
memory queue with the normaliser set once, the teacher as an EMA, the keys enqueued."""

from __future__ import annotations

import itertools

import pytest
import torch

from common.engines import UnitedObjective
from common.losses import NCELoss
from common.networks import GenesisDecoder, GenesisEncoder, PCRLModel, ProjectionHead
from common.tasks import PCRLTask
from common.tasks.pcrl import mix
from common.transforms import apply_spatial_code, spatial_code


def _model(decoder: bool = True) -> PCRLModel:
    torch.manual_seed(0)
    return PCRLModel(GenesisEncoder(3, 1, 2, 3), ProjectionHead(3, 16, 16, 8), GenesisDecoder(3, 1, 2, 3) if decoder else None, embedding_hidden=8)


def _batch(n: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    clean1, clean2 = torch.rand(n, 1, 16, 16, 8, generator=g), torch.rand(n, 1, 16, 16, 8, generator=g)
    codes = [spatial_code([i % 2 == 0, i % 3 == 0, False], i % 4) for i in range(n)]
    return {
        "image": clean1 + 0.5 * torch.rand(clean1.shape, generator=g),  # corrupted inputs
        "view2": clean2 + 0.5 * torch.rand(clean2.shape, generator=g),
        "target": clean1,
        "target2": clean2,
        "aug": torch.stack(codes),
        "aug2": torch.stack(codes[::-1]),
    }


@pytest.fixture
def fixed_draws(monkeypatch):
    """alpha1 = 0.8, lam = 0.7, alpha2 = 0.6 and the reversing permutation, so the targets can be written out."""
    draws = itertools.cycle([0.8, 0.7, 0.6])  # per run: alpha1, lam, alpha2
    monkeypatch.setattr(PCRLTask, "_alpha", lambda self: next(draws))
    monkeypatch.setattr(torch, "randperm", lambda n, **kwargs: torch.arange(n - 1, -1, -1))


def test_four_restorations_of_the_clean_crops(fixed_draws) -> None:
    model, task = _model(), PCRLTask(queue_size=16)
    task.setup(model)
    batch = _batch()
    outputs = UnitedObjective(task, w_dis=1.0, w_res=1.0).run(model, batch)
    x1, x2, c1, c2 = batch["image"], batch["view2"], batch["target"], batch["target2"]
    t1, t2 = apply_spatial_code(c1, batch["aug"]), apply_spatial_code(c2, batch["aug2"])
    perm = torch.arange(3, -1, -1)
    m1, m2 = mix(c1, c1[perm], 0.7), mix(c2, c2[perm], 0.7)
    mx1, mx2 = mix(x1, x1[perm], 0.7), mix(x2, x2[perm], 0.7)
    expected = [
        (t1, x1),  # own features decoded with aug: the clean first crop, transformed
        (mix(t1, t2, 0.8), mix(x1, x2, 0.8)),  # hybrid with the teacher's features of view 2
        (m1, mx1),  # mixup, identity code: the mixed clean crops
        (mix(m1, m2, 0.6), mix(mx1, mx2, 0.6)),  # mixup hybrid
    ]
    assert len(outputs.restorations) == 4
    for k, (restoration, (target, condition)) in enumerate(zip(outputs.restorations, expected)):
        torch.testing.assert_close(restoration.target, target, msg=f"restoration {k}: target")
        torch.testing.assert_close(restoration.condition, condition, msg=f"restoration {k}: condition")
        assert restoration.prediction.requires_grad
    # never the corrupted input (PCRL's code restores apply_code(image) for the normal decoder)
    assert not torch.allclose(outputs.restorations[0].target, apply_spatial_code(x1, batch["aug"]))
    # the hybrid decodes the teacher's view-2 features
    features, _ = task.teacher_outputs(x2)
    with torch.no_grad():
        hybrid = model(x1, code=batch["aug"], mix_features=features, mix_code=batch["aug2"], alpha=0.8)["hybrid"]
    torch.testing.assert_close(outputs.restorations[1].prediction.detach(), hybrid)


def test_nce_terms_and_the_normaliser_set_once_on_the_first_training_batch(fixed_draws) -> None:
    model, task = _model(decoder=False), PCRLTask(queue_size=16, temperature=0.2)
    task.setup(model)
    assert torch.isnan(task.log_z)
    task.eval()
    with torch.no_grad():
        outputs = task.run(model, _batch())
        task(outputs.model, _batch())
    assert torch.isnan(task.log_z) and outputs.restorations == []  # validation sets nothing
    task.train()
    outputs = task.run(model, _batch())
    loss, logs = task(outputs.model, _batch())
    o, nce, negatives = outputs.model, NCELoss(0.2), task.queue.features
    log_z = nce.log_normaliser(o["query"], o["key"], negatives)
    assert task.log_z.item() == pytest.approx(log_z.item())
    k_mixed = mix(o["key"], o["key"][torch.arange(3, -1, -1)], 0.7)
    expected = (nce(o["query"], o["key"], negatives, log_z) + nce(o["mixed_query"], o["mixed_key"], negatives, log_z)
                + nce(o["mixed_query"], k_mixed, negatives, log_z)) / 3  # fmt: skip
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(o["mixed_key_features"], k_mixed)
    assert set(logs) == {"retrieval", "positive_similarity"}
    stored = task.log_z.clone()
    task(outputs.model, _batch())
    assert torch.equal(task.log_z, stored)  # set once


def test_teacher_is_the_ema_and_keys_are_enqueued() -> None:
    model, task = _model(), PCRLTask(queue_size=8, momentum=0.9)
    objective = UnitedObjective(task, w_dis=1.0, w_res=1.0)
    task.setup(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    teacher_before = {n: p.clone() for n, p in task.teacher.named_parameters()}
    outputs = objective.run(model, _batch())
    loss, _, _ = objective.generator_loss(outputs, _batch())
    optimizer.zero_grad()
    loss.backward()
    assert model.aug_embedding.layers[0].weight.grad.abs().sum() > 0  # the conditioning learns
    optimizer.step()
    task.after_step(model)
    online = dict(model.named_parameters())
    for name, param in task.teacher.named_parameters():
        torch.testing.assert_close(param, 0.9 * teacher_before[name] + 0.1 * online[name].detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(task.queue.ordered()[-4:], outputs.model["key"])


def test_missing_batch_keys_are_named() -> None:
    model, task = _model(), PCRLTask(queue_size=8)
    task.setup(model)
    batch = _batch()
    del batch["aug2"]
    with pytest.raises(KeyError, match="aug2"):
        task.run(model, batch)
