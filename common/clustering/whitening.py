"""PCA whitening and L2 normalisation of features before k-means (DeepCluster, Caron et al., ECCV 2018).

DeepCluster reduces the features to 256 principal components, whitens them (each component divided by the square
root of its variance) and L2-normalises every vector before clustering, so that k-means is not dominated by a few
high-variance directions. Components whose variance is (numerically) zero, e.g. beyond ``N - 1`` when there are
fewer samples than dimensions, are dropped (their scale is 0) instead of being blown up.
"""

from __future__ import annotations

import torch

__all__ = ["fit_whitening", "whiten"]


def fit_whitening(features: torch.Tensor, dim: int, eps: float = 1e-5, rank_tolerance: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit the PCA whitening of ``features`` to ``dim`` components.

    Args:
        features: ``(N, F)``, ``N >= 2``.
        dim: number of principal components kept, ``1 <= dim <= F``.
        eps: added to every variance before the square root.
        rank_tolerance: components with variance below ``rank_tolerance * largest variance`` get scale 0.

    Returns:
        ``(mean (F,), projection (F, dim))``, float32: ``whiten(x) = normalize((x - mean) @ projection)``; column
        ``j`` of ``projection`` is the ``j``-th principal direction (by decreasing variance) divided by its standard
        deviation, with the sign fixed so that its largest entry is positive (a deterministic basis).
    """
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"whitening needs (N >= 2, F) features, got shape {tuple(features.shape)}.")
    if not 1 <= dim <= features.shape[1]:
        raise ValueError(f"dim must be in [1, {features.shape[1]}], got {dim}.")
    x = features.double()
    mean = x.mean(dim=0)
    centred = x - mean
    covariance = centred.T @ centred / (x.shape[0] - 1)
    variances, directions = torch.linalg.eigh(covariance)  # ascending
    variances, directions = variances.flip(0)[:dim], directions.flip(1)[:, :dim]
    signs = torch.sign(directions.gather(0, directions.abs().argmax(dim=0, keepdim=True)))
    directions = directions * torch.where(signs == 0, torch.ones_like(signs), signs)
    scale = (variances.clamp_min(0) + eps).rsqrt()
    scale = torch.where(variances > rank_tolerance * variances.max().clamp_min(1e-30), scale, torch.zeros_like(scale))
    return mean.float(), (directions * scale).float()


def whiten(features: torch.Tensor, mean: torch.Tensor, projection: torch.Tensor) -> torch.Tensor:
    """``(N, F)`` -> ``(N, dim)``: centre, project, and L2-normalise each row (a zero row stays zero)."""
    projected = (features.float() - mean) @ projection
    return torch.nn.functional.normalize(projected, dim=1)
