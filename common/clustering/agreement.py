"""Agreement between two clusterings of the same points: NMI (as DeepCluster reports it) and the adjusted Rand index.

DeepCluster (Caron et al., ECCV 2018, Fig. 2) measures how stable the pseudo-labels are from one epoch to the next
with the normalised mutual information ``NMI(A, B) = I(A; B) / sqrt(H(A) H(B))``: 1 when the two partitions are the
same up to renaming the clusters. NMI of two unrelated partitions of few points is above 0 (about 0.05 for 64
points in 4 clusters), so the adjusted Rand index (Hubert and Arabie, 1985), whose expected value for unrelated
partitions is exactly 0, is given as well.
"""

from __future__ import annotations

import math

import torch

__all__ = ["adjusted_rand_index", "contingency", "normalized_mutual_information"]


def contingency(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(n_a, n_b)`` table of how many points are in cluster ``i`` of ``a`` and cluster ``j`` of ``b``
    (labels are renumbered to the values present)."""
    a, b = torch.as_tensor(a).flatten().long(), torch.as_tensor(b).flatten().long()
    if a.shape != b.shape or a.numel() == 0:
        raise ValueError(f"need two non-empty labellings of the same points, got {tuple(a.shape)} and {tuple(b.shape)}.")
    _, a = torch.unique(a, return_inverse=True)
    _, b = torch.unique(b, return_inverse=True)
    rows, cols = int(a.max()) + 1, int(b.max()) + 1
    return torch.bincount(a * cols + b, minlength=rows * cols).reshape(rows, cols).double()


def _entropy(counts: torch.Tensor) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def normalized_mutual_information(a: torch.Tensor, b: torch.Tensor) -> float:
    """``I(A; B) / sqrt(H(A) H(B))`` in [0, 1]; 1 when both partitions are a single cluster."""
    table = contingency(a, b)
    n = table.sum()
    h_a, h_b = _entropy(table.sum(dim=1)), _entropy(table.sum(dim=0))
    if h_a == 0 or h_b == 0:
        return 1.0 if h_a == h_b else 0.0
    joint = table[table > 0] / n
    outer = (table.sum(dim=1, keepdim=True) @ table.sum(dim=0, keepdim=True))[table > 0] / n**2
    mutual = float((joint * (joint / outer).log()).sum())
    return max(0.0, min(1.0, mutual / math.sqrt(h_a * h_b)))


def adjusted_rand_index(a: torch.Tensor, b: torch.Tensor) -> float:
    """The adjusted Rand index: 1 for identical partitions, 0 in expectation for unrelated ones (can be negative)."""
    table = contingency(a, b)

    def pairs(x: torch.Tensor) -> float:
        return float((x * (x - 1) / 2).sum())

    n = float(table.sum())
    index, rows, cols = pairs(table), pairs(table.sum(dim=1)), pairs(table.sum(dim=0))
    total = n * (n - 1) / 2
    expected = rows * cols / total if total else 0.0
    maximum = (rows + cols) / 2
    if maximum == expected:  # both partitions trivial (one cluster, or all singletons)
        return 1.0
    return (index - expected) / (maximum - expected)
