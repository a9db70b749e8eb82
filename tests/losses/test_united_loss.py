"""UnitedLoss: hand-computed weighted sums, active terms, invalid weights."""

from __future__ import annotations

import pytest
import torch

from common.losses import UnitedLoss


@pytest.mark.parametrize(
    "weights,terms,expected",
    [
        ((1.0, 0.0, 0.0), {"dis": 2.0794}, 2.0794),  # stage 1: cross-entropy only
        ((1.0, 100.0, 0.0), {"dis": 2.0, "res": 0.01}, 3.0),  # stage 2: 1 * 2 + 100 * 0.01
        ((1.0, 100.0, 1.0), {"dis": 0.5, "res": 0.002, "adv": -0.25}, 0.45),  # stage 3: 0.5 + 0.2 - 0.25
        ((1.0, 10.0, 0.001), {"dis": 1.0, "res": 0.1, "adv": 3.0}, 2.003),  # DiRA weights
    ],
)
def test_weighted_sum(weights: tuple, terms: dict, expected: float) -> None:
    loss = UnitedLoss(*weights)
    total = loss({k: torch.tensor(v) for k, v in terms.items()})
    assert total.item() == pytest.approx(expected, abs=1e-6)


def test_active_terms_follow_weights() -> None:
    assert UnitedLoss(1, 0, 0).active == ("dis",)
    assert UnitedLoss(1, 100, 0).active == ("dis", "res")
    assert UnitedLoss(0, 1, 1).active == ("res", "adv")


def test_gradient_flows_with_weights() -> None:
    dis, res = torch.tensor(1.0, requires_grad=True), torch.tensor(1.0, requires_grad=True)
    UnitedLoss(2.0, 100.0)({"dis": dis, "res": res}).backward()
    assert dis.grad.item() == 2.0 and res.grad.item() == 100.0


def test_missing_and_inactive_terms_raise() -> None:
    loss = UnitedLoss(1.0, 100.0)
    with pytest.raises(KeyError, match="missing \\['res'\\]"):
        loss({"dis": torch.tensor(1.0)})
    with pytest.raises(KeyError, match="adv"):
        loss({"dis": torch.tensor(1.0), "res": torch.tensor(1.0), "adv": torch.tensor(1.0)})


@pytest.mark.parametrize("weights", [(-1.0, 0.0, 0.0), (1.0, -0.1, 0.0), (0.0, 0.0, 0.0)])
def test_invalid_weights(weights: tuple) -> None:
    with pytest.raises(ValueError):
        UnitedLoss(*weights)
