"""InfoNCE against a queue and NT-Xent: hand-computed values, a hand-written reference, MONAI's ContrastiveLoss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from monai.losses import ContrastiveLoss

from common.losses import InfoNCELoss, NTXentLoss


def _unit(*rows: list[float]) -> torch.Tensor:
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


@pytest.mark.parametrize("temperature", [0.07, 0.2, 1.0])
def test_info_nce_aligned_key_and_orthogonal_negatives(temperature: float) -> None:
    q = torch.eye(5)[:2]  # two queries e0, e1, each its own key
    negatives = torch.eye(5)[2:]  # K = 3 negatives orthogonal to both
    expected = -math.log(math.exp(1 / temperature) / (math.exp(1 / temperature) + 3))
    assert InfoNCELoss(temperature)(q, q, negatives).item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_info_nce_uniform_logits_give_log_k_plus_one() -> None:
    q = _unit([1.0, 2.0, 3.0])
    negatives = q.repeat(7, 1)  # every negative is as similar as the key
    assert InfoNCELoss(0.2)(q, q, negatives).item() == pytest.approx(math.log(8), rel=1e-5)


def test_info_nce_matches_a_hand_written_reference() -> None:
    torch.manual_seed(0)
    q, k, negatives, t = torch.randn(4, 6), torch.randn(4, 6), torch.randn(9, 6), 0.2
    total = 0.0
    for i in range(4):
        qi, ki = F.normalize(q[i], dim=0), F.normalize(k[i], dim=0)
        positive = math.exp(float(qi @ ki) / t)
        others = sum(math.exp(float(qi @ F.normalize(n, dim=0)) / t) for n in negatives)
        total += -math.log(positive / (positive + others))
    assert InfoNCELoss(t)(q, k, negatives).item() == pytest.approx(total / 4, rel=1e-5)


def test_info_nce_is_finite_at_low_temperature_where_exp_overflows() -> None:
    q = torch.eye(3)
    loss = InfoNCELoss(0.001)(q, q, -torch.eye(3))  # exp(1000) overflows float32
    assert torch.isfinite(loss) and loss.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("batch,dim,temperature", [(2, 3, 0.5), (5, 8, 0.1), (8, 16, 1.0)])
def test_nt_xent_equals_monai_contrastive_loss(batch: int, dim: int, temperature: float) -> None:
    torch.manual_seed(batch)
    z1, z2 = torch.randn(batch, dim), torch.randn(batch, dim)
    ours = NTXentLoss(temperature)(z1, z2)
    torch.testing.assert_close(ours, ContrastiveLoss(temperature)(z1, z2), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours, NTXentLoss(temperature)(z2, z1), rtol=1e-5, atol=1e-6)  # symmetric


def test_nt_xent_perfectly_correlated_and_uniform_embeddings() -> None:
    z = torch.eye(3)  # each sample's two views identical, samples orthogonal: 2B - 2 = 4 negatives at cosine 0
    t = 0.5
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 4))
    assert NTXentLoss(t)(z, z).item() == pytest.approx(expected, rel=1e-5)
    same = torch.ones(3, 4)  # everything identical: the positive is one of 2B - 1 equal candidates
    assert NTXentLoss(t)(same, same).item() == pytest.approx(math.log(5), rel=1e-5)
    assert NTXentLoss(t, gather_distributed=False)(z, z).item() == pytest.approx(expected, rel=1e-5)


def test_losses_check_their_inputs() -> None:
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(0.0)
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(-1.0)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        NTXentLoss()(torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="negatives"):
        InfoNCELoss()(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(4, 2))
