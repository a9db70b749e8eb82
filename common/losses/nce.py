"""Noise-contrastive estimation against a memory queue, the instance-discrimination loss of PCRL (and of C2L).

Wu et al. ("Unsupervised feature learning via non-parametric instance discrimination", CVPR 2018, eq. 12-13) score a
query ``q`` against its positive key and ``K`` memory entries with ``P(j) = exp(q.v_j / T) / Z`` and tell the
positive from ``K`` noise samples of density ``Pn = 1 / n`` with a binary classifier
``h(j) = P(j) / (P(j) + K * Pn)``::

    loss = -1/B * sum_i [ log h(pos_i) + sum_j log(1 - h(neg_ij)) ]

``Z`` is estimated once, on the first batch, as ``n`` times the mean of ``exp(s / T)`` (PCRL's ``MemoryC2L``). With
that estimate ``n`` cancels: writing ``rho = exp(s / T) / mean(exp(s / T))``, ``h = rho / (rho + K)``, so the loss
depends only on ``K``, ``T`` and the log-normaliser ``log_z = log mean exp(s / T)``. (PCRL's code passes the number
of *batches* as ``n``; by the cancellation that bug is harmless, up to the ``eps`` it adds.) Here both terms are
softplus functions of ``s / T - log_z`` (no overflow, no ``eps``)::

    loss_i = softplus(log K - log rho_pos) + sum_j softplus(log rho_neg_j - log K)

The task keeps ``log_z`` as state (set on the first training batch from every rank's scores, so the ranks agree, and
saved in the checkpoint).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NCELoss"]


class NCELoss(nn.Module):
    """NCE of a query against its positive key and a queue of ``K`` negatives (see the module docstring).

    Args:
        temperature: ``T`` (PCRL: 0.2).

    Shapes:
        ``query``, ``key``: ``(B, D)``; ``negatives``: ``(K, D)``; ``log_z``: a scalar tensor; returns a scalar.
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        if not float(temperature) > 1e-8:
            raise ValueError(f"temperature must be positive, got {temperature}.")
        self.temperature = float(temperature)

    def scores(self, query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """``(B, 1 + K)`` cosine similarities over ``T``: the positive in column 0, then the negatives."""
        if query.ndim != 2 or query.shape != key.shape:
            raise ValueError(f"query and key must both be (B, D), got {tuple(query.shape)} and {tuple(key.shape)}.")
        if negatives.ndim != 2 or negatives.shape[1] != query.shape[1]:
            raise ValueError(f"negatives must be (K, {query.shape[1]}), got {tuple(negatives.shape)}.")
        q = F.normalize(query.float(), dim=1)
        k = F.normalize(key.float(), dim=1)
        n = F.normalize(negatives.float(), dim=1)
        return torch.cat([(q * k).sum(dim=1, keepdim=True), q @ n.T], dim=1) / self.temperature

    @torch.no_grad()
    def log_normaliser(self, query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """``log mean exp(s / T)`` over every score of the batch and, under ``torch.distributed``, of every rank."""
        from common.engines.distributed import all_gather  # here: common.engines imports common.losses

        scores = self.scores(query, key, negatives)
        local = torch.stack([torch.logsumexp(scores.flatten(), dim=0), torch.tensor(math.log(scores.numel()))])
        gathered = all_gather(local[None].to(scores.device), with_grad=False)  # (world, 2): log-sum and log-count
        return torch.logsumexp(gathered[:, 0], dim=0) - torch.logsumexp(gathered[:, 1], dim=0)

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor, log_z: torch.Tensor | float
    ) -> torch.Tensor:
        scores = self.scores(query, key, negatives)
        log_rho = scores - torch.as_tensor(log_z, dtype=scores.dtype, device=scores.device)
        log_k = math.log(negatives.shape[0])
        positive = F.softplus(log_k - log_rho[:, 0])
        negative = F.softplus(log_rho[:, 1:] - log_k).sum(dim=1)
        return (positive + negative).mean()
