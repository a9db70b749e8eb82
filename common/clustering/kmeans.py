"""k-means in torch (k-means++ seeding, Lloyd iterations) that never leaves a cluster empty.

DeepCluster (Caron et al., ECCV 2018) clusters the features with faiss k-means, which re-seeds a cluster that
becomes empty by splitting a large one; an empty cluster would be a pseudo-class without examples. This module
does the same: an empty cluster takes, as its new centroid, the point of the largest cluster that lies farthest from
that cluster's centroid (the point then belongs to it), during the iterations and once more after the last one,
so the returned assignment uses every cluster.

Why custom: scipy (a dependency) has ``scipy.cluster.vq.kmeans2``, but on an empty cluster it only warns or raises
(``missing="warn" | "raise"``) and keeps the stale centroid, and it runs on NumPy arrays on the CPU; this runs where
the features are (CPU or GPU), seeded by a ``torch.Generator``, deterministic for a given seed on a given device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["KMeansResult", "kmeans", "kmeans_plus_plus", "squared_distances"]


@dataclass
class KMeansResult:
    """The outcome of :func:`kmeans`.

    Attributes:
        centroids: ``(k, D)``.
        assignments: ``(N,)`` long, the nearest centroid of every point; every cluster has at least one point.
        inertia: sum of squared distances of the points to their centroids.
        iterations: Lloyd iterations run.
        reseeded: empty clusters re-seeded over the run.
    """

    centroids: torch.Tensor
    assignments: torch.Tensor
    inertia: float
    iterations: int
    reseeded: int


def squared_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """``(N, k)`` squared Euclidean distances between the rows of ``x`` ``(N, D)`` and ``centroids`` ``(k, D)``."""
    return torch.cdist(x, centroids).square()


def kmeans_plus_plus(x: torch.Tensor, num_clusters: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur and Vassilvitskii, 2007): each new centroid is a point drawn with probability
    proportional to its squared distance to the nearest centroid so far (uniformly among unused points when all
    distances are 0, e.g. duplicated points).

    Returns:
        ``(k, D)`` initial centroids, rows of ``x``.
    """
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator, device=generator.device))
    chosen = [first]
    nearest = squared_distances(x, x[first : first + 1]).squeeze(1)
    for _ in range(num_clusters - 1):
        weights = nearest.clone()
        weights[chosen] = 0
        if float(weights.sum()) <= 0:
            weights = torch.ones_like(nearest)
            weights[chosen] = 0
        pick = int(torch.multinomial(weights.double().cpu(), 1, generator=_cpu(generator)))
        chosen.append(pick)
        nearest = torch.minimum(nearest, squared_distances(x, x[pick : pick + 1]).squeeze(1))
    return x[chosen].clone()


def _cpu(generator: torch.Generator) -> torch.Generator:
    if generator.device.type == "cpu":
        return generator
    g = torch.Generator()
    g.manual_seed(int(torch.randint(2**62, (1,), generator=generator, device=generator.device)))
    return g


def _fill_empty(
    x: torch.Tensor, centroids: torch.Tensor, assignments: torch.Tensor, distances: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Give every empty cluster the point of the largest cluster farthest from its centroid; update the assignment."""
    k = centroids.shape[0]
    reseeded = 0
    counts = torch.bincount(assignments, minlength=k)
    own = distances.gather(1, assignments[:, None]).squeeze(1).clone()
    for empty in torch.nonzero(counts == 0).flatten().tolist():
        donor = int(torch.argmax(counts))
        candidates = torch.where(assignments == donor, own, torch.full_like(own, -1.0))
        point = int(torch.argmax(candidates))
        assignments[point] = empty
        centroids[empty] = x[point]
        own[point] = 0.0
        counts[donor] -= 1
        counts[empty] += 1
        reseeded += 1
    return centroids, assignments, reseeded


def kmeans(
    x: torch.Tensor, num_clusters: int, max_iterations: int = 50, tolerance: float = 1e-6, seed: int = 0
) -> KMeansResult:
    """Cluster the rows of ``x`` into ``num_clusters`` non-empty clusters.

    Args:
        x: ``(N, D)`` features, ``N >= num_clusters``.
        num_clusters: ``k``.
        max_iterations: most Lloyd iterations.
        tolerance: stop when the centroids move less than this (sum of squared shifts) and no cluster was empty.
        seed: seed of the k-means++ seeding; the same seed and data give the same result on the same device.

    Returns:
        A :class:`KMeansResult`; every cluster holds at least one point.

    Raises:
        ValueError: fewer points than clusters, ``k < 1``, or non-finite features.
    """
    if x.ndim != 2:
        raise ValueError(f"kmeans expects (N, D) features, got shape {tuple(x.shape)}.")
    if num_clusters < 1 or x.shape[0] < num_clusters:
        raise ValueError(f"cannot make {num_clusters} non-empty clusters of {x.shape[0]} points.")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("kmeans: the features hold NaN or infinite values.")
    x = x.float()
    generator = torch.Generator(device=x.device)
    generator.manual_seed(int(seed))
    centroids = kmeans_plus_plus(x, num_clusters, generator)
    reseeded, iterations = 0, 0
    for iterations in range(1, max_iterations + 1):
        distances = squared_distances(x, centroids)
        assignments = distances.argmin(dim=1)
        counts = torch.bincount(assignments, minlength=num_clusters)
        updated = torch.zeros_like(centroids).index_add_(0, assignments, x)
        updated = updated / counts.clamp_min(1)[:, None].to(x.dtype)
        empty = bool((counts == 0).any())
        if empty:
            updated, assignments, n = _fill_empty(x, updated, assignments, distances)
            reseeded += n
        shift = float((updated - centroids).square().sum())
        centroids = updated
        if shift <= tolerance and not empty:
            break
    distances = squared_distances(x, centroids)
    assignments = distances.argmin(dim=1)
    centroids, assignments, n = _fill_empty(x, centroids, assignments, distances)
    reseeded += n
    counts = torch.bincount(assignments, minlength=num_clusters)  # all >= 1: centroids = means of their clusters
    centroids = torch.zeros_like(centroids).index_add_(0, assignments, x) / counts[:, None].to(x.dtype)
    inertia = float((x - centroids[assignments]).square().sum())
    return KMeansResult(centroids, assignments, inertia, iterations, reseeded)
