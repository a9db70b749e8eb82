"""BYOL's ``2 - 2 cos`` loss: aligned, orthogonal and opposite vectors, symmetry, no gradient into the target."""

from __future__ import annotations

import pytest
import torch

from common.losses import BYOLLoss


def test_values_by_hand() -> None:
    loss = BYOLLoss()
    e0, e1 = torch.eye(3)[:1], torch.eye(3)[1:2]
    assert loss(e0, e0, 5 * e0, e0).item() == pytest.approx(0.0, abs=1e-7)  # aligned (any scale)
    assert loss(e0, e0, e1, e1).item() == pytest.approx(2.0)  # orthogonal
    assert loss(e0, e0, -e0, -e0).item() == pytest.approx(4.0)  # opposite
    # half aligned, half opposite: (0 + 4) / 2
    assert loss(e0, e0, -e0, e0).item() == pytest.approx(2.0)


def test_symmetric_in_the_views_and_targets_get_no_gradient() -> None:
    torch.manual_seed(0)
    p1, p2 = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    z1, z2 = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    loss = BYOLLoss()
    torch.testing.assert_close(loss(p1, p2, z1, z2), loss(p2, p1, z2, z1))
    loss(p1, p2, z1, z2).backward()
    assert p1.grad is not None and p2.grad is not None
    assert z1.grad is None and z2.grad is None
    with pytest.raises(ValueError):
        BYOLLoss.regression(torch.zeros(2, 3), torch.zeros(2, 4))
