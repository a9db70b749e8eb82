"""PCRL's NCE: hand-computed values, a reference with the noise density written out, the log-normaliser."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from common.losses import NCELoss


def _reference(q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor, t: float, n_data: int) -> float:
    """Wu et al. 2018 eq. 12-13 as written: P = exp(s / T) / Z with Z = n * mean exp(s / T), noise Pn = 1 / n."""
    q, k, negatives = (F.normalize(x, dim=1) for x in (q, k, negatives))
    scores = torch.cat([(q * k).sum(1, keepdim=True), q @ negatives.T], dim=1) / t
    p = scores.double().exp()
    p = p / (n_data * p.mean())
    m, pn = negatives.shape[0], 1.0 / n_data
    log_d1 = torch.log(p[:, 0] / (p[:, 0] + m * pn))
    log_d0 = torch.log(m * pn / (p[:, 1:] + m * pn))
    return float(-(log_d1.sum() + log_d0.sum()) / q.shape[0])


def test_aligned_key_and_orthogonal_negatives_by_hand() -> None:
    q = torch.eye(6)[:1]
    negatives = torch.eye(6)[1:5]  # K = 4, cosine 0
    # T = 1, log_z = 0: rho_pos = e, rho_neg = 1 -> log(1 + K / e) + K * log(1 + 1 / K)
    expected = math.log(1 + 4 / math.e) + 4 * math.log(1 + 1 / 4)
    assert NCELoss(1.0)(q, q, negatives, 0.0).item() == pytest.approx(expected, rel=1e-6)


def test_uniform_scores_by_hand() -> None:
    q = F.normalize(torch.ones(2, 3), dim=1)
    negatives = q[:1].repeat(5, 1)  # every score equal: rho = 1 everywhere once log_z is the mean
    loss = NCELoss(0.2)
    log_z = loss.log_normaliser(q, q, negatives)
    assert log_z.item() == pytest.approx(1 / 0.2, rel=1e-6)
    expected = math.log(1 + 5) + 5 * math.log(1 + 1 / 5)
    assert loss(q, q, negatives, log_z).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("n_data", [37, 100_000])
def test_equals_the_written_out_estimator_whatever_the_dataset_size(n_data: int) -> None:
    torch.manual_seed(1)
    q, k, negatives, t = torch.randn(4, 8), torch.randn(4, 8), torch.randn(16, 8), 0.2
    loss = NCELoss(t)
    log_z = loss.log_normaliser(q, k, negatives)  # Z estimated on this batch, as PCRL does on its first one
    assert loss(q, k, negatives, log_z).item() == pytest.approx(_reference(q, k, negatives, t, n_data), rel=1e-5)


def test_log_normaliser_is_the_log_mean_exp_of_every_score() -> None:
    torch.manual_seed(2)
    q, k, negatives = torch.randn(3, 4), torch.randn(3, 4), torch.randn(5, 4)
    loss = NCELoss(0.5)
    assert loss.log_normaliser(q, k, negatives).item() == pytest.approx(loss.scores(q, k, negatives).exp().mean().log().item(), rel=1e-6)


def test_a_better_positive_lowers_the_loss_and_shapes_are_checked() -> None:
    torch.manual_seed(3)
    negatives = torch.randn(8, 4)
    q = torch.randn(2, 4)
    loss = NCELoss(0.2)
    assert loss(q, q, negatives, 0.0) < loss(q, -q, negatives, 0.0)
    with pytest.raises(ValueError):
        loss(q, q[:1], negatives, 0.0)
    with pytest.raises(ValueError):
        NCELoss(0.0)
