"""PCA whitening: decorrelated unit-variance components, dropped null directions, unit-norm outputs."""

from __future__ import annotations

import torch

from common.clustering import fit_whitening, whiten


def test_whitened_components_have_identity_covariance() -> None:
    g = torch.Generator().manual_seed(0)
    mixing = torch.randn(6, 6, generator=g)
    x = torch.randn(500, 6, generator=g) @ mixing + 3.0
    mean, projection = fit_whitening(x, dim=4, eps=0.0)
    z = (x - mean) @ projection
    torch.testing.assert_close(z.T @ z / (len(x) - 1), torch.eye(4), atol=1e-3, rtol=0)
    variances = z.var(dim=0)
    assert torch.allclose(variances, torch.ones(4), atol=1e-3)
    out = whiten(x, mean, projection)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(500))


def test_directions_without_variance_are_dropped_not_blown_up() -> None:
    x = torch.zeros(10, 5)
    x[:, 0] = torch.arange(10.0)  # one direction varies, four do not
    _, projection = fit_whitening(x, dim=5)
    assert projection[:, 0].abs().sum() > 0 and projection[:, 1:].abs().sum() == 0


def test_the_fit_is_deterministic() -> None:
    x = torch.rand(30, 8)
    a, b = fit_whitening(x, 3), fit_whitening(x.clone(), 3)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
