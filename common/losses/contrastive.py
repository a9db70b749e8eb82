"""Contrastive losses on embeddings: InfoNCE against a queue (MoCo) and NT-Xent with in-batch negatives (SimCLR).

MONAI's :class:`monai.losses.ContrastiveLoss` computes NT-Xent in one process: it exponentiates
``similarity / temperature`` directly (overflow risk in float16 at low temperatures), takes no queue and sees only
the local batch. These losses compute the same quantities through ``cross_entropy`` (log-sum-exp, in float32), take
a queue of negatives (:class:`InfoNCELoss`), and gather the negatives of every rank (:class:`NTXentLoss`), so a loss
on several ranks equals the loss of one process on the concatenated batch. On one process :class:`NTXentLoss` equals
MONAI's ``ContrastiveLoss`` (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["InfoNCELoss", "NTXentLoss"]


def _check_temperature(temperature: float) -> float:
    temperature = float(temperature)
    if not temperature > 1e-8:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    return temperature


def _check_pair(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"{names} must both be (B, D), got {tuple(a.shape)} and {tuple(b.shape)}.")


class InfoNCELoss(nn.Module):
    """InfoNCE with a queue of negatives, as in MoCo (He et al., CVPR 2020, eq. 1; MoCo v2: Chen et al., 2020).

    For each query ``q_i`` with positive key ``k_i`` and the queue's ``K`` negatives ``n_j`` (all L2-normalised)::

        loss_i = -log( exp(q_i.k_i / T) / (exp(q_i.k_i / T) + sum_j exp(q_i.n_j / T)) )

    averaged over the batch, computed as a ``(K + 1)``-way cross-entropy with the positive at index 0. Each row needs
    only its own key and the queue (the same on every rank), so a rank's mean over its rows, averaged over ranks by
    DistributedDataParallel, is the loss of one process on the concatenated batch.

    Args:
        temperature: ``T`` (MoCo v2 / DiRA: 0.2; MoCo: 0.07).

    Shapes:
        ``query``, ``key``: ``(B, D)``; ``negatives``: ``(K, D)``; returns a scalar.
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        self.temperature = _check_temperature(temperature)

    def logits(self, query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """``(B, 1 + K)`` similarities over the temperature: the positive in column 0, then the negatives."""
        _check_pair(query, key, "query and key")
        if negatives.ndim != 2 or negatives.shape[1] != query.shape[1]:
            raise ValueError(f"negatives must be (K, {query.shape[1]}), got {tuple(negatives.shape)}.")
        q = F.normalize(query.float(), dim=1)
        k = F.normalize(key.float(), dim=1)
        n = F.normalize(negatives.float(), dim=1)
        positive = (q * k).sum(dim=1, keepdim=True)
        return torch.cat([positive, q @ n.T], dim=1) / self.temperature

    def forward(self, query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        logits = self.logits(query, key, negatives)
        return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))


class NTXentLoss(nn.Module):
    """NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al., ICML 2020, eq. 1).

    The ``2B`` embeddings of two views are L2-normalised; each one's positive is the other view of its sample and
    its negatives are all other embeddings except itself::

        loss = mean over the 2B anchors a of -log( exp(s(a, a+) / T) / sum_{c != a} exp(s(a, c) / T) )

    With ``gather_distributed`` every rank's embeddings join the candidates (a differentiable all-gather): each rank
    averages over its own anchors against the ``2 * world_size * B`` candidates, and DistributedDataParallel's
    gradient average then equals the gradient of one process on the concatenated batch. Used by the Swin UNETR
    contrastive term (Tang et al., CVPR 2022, T = 0.5).

    Args:
        temperature: ``T`` (SimCLR and Swin UNETR: 0.5).
        gather_distributed: gather the candidates of every rank (no effect without a process group).

    Shapes:
        ``z1``, ``z2``: ``(B, D)``, row ``i`` of both from the same sample; returns a scalar.
    """

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = True) -> None:
        super().__init__()
        self.temperature = _check_temperature(temperature)
        self.gather_distributed = gather_distributed

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        _check_pair(z1, z2, "z1 and z2")
        batch = z1.shape[0]
        a1, a2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
        if self.gather_distributed:
            from common.engines.distributed import all_gather, rank  # here: common.engines imports common.losses

            c1, c2 = all_gather(a1), all_gather(a2)
            offset = rank() * batch if c1.shape[0] > batch else 0
        else:
            c1, c2, offset = a1, a2, 0
        total = c1.shape[0]
        anchors = torch.cat([a1, a2], dim=0)  # (2B, D)
        logits = anchors @ torch.cat([c1, c2], dim=0).T / self.temperature  # (2B, 2 * total)
        own = torch.arange(batch, device=z1.device) + offset
        self_index = torch.cat([own, own + total])
        positive_index = torch.cat([own + total, own])
        logits = logits.masked_fill(F.one_hot(self_index, 2 * total).bool(), float("-inf"))
        return F.cross_entropy(logits, positive_index)
