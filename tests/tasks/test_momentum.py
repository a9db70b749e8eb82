"""EMA copies: frozen deep copies, the update formula on parameters only, and BYOL's cosine momentum schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from common.tasks import cosine_schedule, momentum_copy, update_momentum, update_momentum_copy


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_update_is_the_ema_formula_on_parameters_and_leaves_buffers_alone() -> None:
    target, online = _net(0), _net(1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    online[1].running_mean.fill_(5.0)  # an online buffer that must not leak into the copy
    update_momentum(target, online, 0.9)
    for name, param in target.named_parameters():
        expected = 0.9 * before[name] + 0.1 * dict(online.named_parameters())[name].detach()
        torch.testing.assert_close(param.detach(), expected, rtol=0, atol=1e-6)
    for name, buffer in target.named_buffers():
        assert torch.equal(buffer, before[name]), name


def test_update_by_hand_on_one_number() -> None:
    target, online = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        target.weight.fill_(1.0)
        online.weight.fill_(3.0)
    update_momentum(target, online, 0.75)  # 0.75 * 1 + 0.25 * 3 = 1.5
    assert target.weight.item() == 1.5
    update_momentum(target, online, 0.0)  # m = 0 copies
    assert target.weight.item() == 3.0
    with torch.no_grad():
        online.weight.fill_(-7.0)
    update_momentum(target, online, 1.0)  # m = 1 keeps
    assert target.weight.item() == 3.0


def test_momentum_copy_is_frozen_and_independent() -> None:
    model = nn.Module()
    model.encoder, model.head = _net(0), nn.Linear(2, 2)
    copies = momentum_copy(model, ["encoder", "head"])
    assert set(copies) == {"encoder", "head"}
    assert not any(p.requires_grad for p in copies.parameters())
    assert all(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        model.head.weight.add_(1.0)
    assert not torch.equal(copies["head"].weight, model.head.weight)  # a copy, not the same tensors
    update_momentum_copy(copies, model, 0.0)
    assert torch.equal(copies["head"].weight, model.head.weight)


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="no such component"):
        momentum_copy(nn.Module(), ["encoder"])
    with pytest.raises(ValueError, match="momentum"):
        update_momentum(_net(0), _net(1), 1.5)
    with pytest.raises(ValueError, match="differ in parameters"):
        update_momentum(nn.Linear(2, 2), nn.Linear(2, 2, bias=False), 0.5)


def test_cosine_schedule_by_hand() -> None:
    # BYOL: tau = 1 - (1 - 0.996) * (cos(pi k / K) + 1) / 2
    assert cosine_schedule(0, 100, 0.996, 1.0) == pytest.approx(0.996)
    assert cosine_schedule(50, 100, 0.996, 1.0) == pytest.approx(0.998)  # cos(pi / 2) = 0: halfway
    assert cosine_schedule(25, 100, 0.996, 1.0) == pytest.approx(1 - 0.004 * (math.cos(math.pi / 4) + 1) / 2)
    assert cosine_schedule(100, 100, 0.996, 1.0) == 1.0
    assert cosine_schedule(250, 100, 0.996, 1.0) == 1.0  # stays at the end value
    values = [cosine_schedule(k, 10, 0.9, 1.0) for k in range(11)]
    assert all(a < b for a, b in zip(values, values[1:]))  # rises monotonically
    with pytest.raises(ValueError):
        cosine_schedule(-1, 10, 0.9, 1.0)
    with pytest.raises(ValueError):
        cosine_schedule(0, 0, 0.9, 1.0)
