"""torch k-means: finds separated clusters, never returns an empty cluster, is reproducible from its seed."""

from __future__ import annotations

import pytest
import torch

from common.clustering import adjusted_rand_index, kmeans


def _blobs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    labels = torch.arange(4).repeat_interleave(25)
    return centres[labels] + 0.5 * torch.randn(100, 2, generator=g), labels


def test_separated_blobs_are_recovered() -> None:
    x, labels = _blobs()
    result = kmeans(x, 4, seed=0)
    assert adjusted_rand_index(result.assignments, labels) == pytest.approx(1.0)
    assert result.reseeded == 0
    for c in range(4):  # centroids are the means of their clusters
        torch.testing.assert_close(result.centroids[c], x[result.assignments == c].mean(dim=0))
    assert result.inertia == pytest.approx(float((x - result.centroids[result.assignments]).square().sum()), rel=1e-5)


def test_empty_clusters_are_reseeded() -> None:
    """Two distinct points, three clusters: the seeding must put two centroids on the same point, whose second
    copy wins no point (ties go to the first); the run re-seeds it and returns three non-empty clusters."""
    x = torch.cat([torch.zeros(10, 2), torch.ones(10, 2)])
    result = kmeans(x, 3, seed=0)
    assert result.reseeded >= 1
    assert torch.bincount(result.assignments, minlength=3).min() >= 1


def test_one_point_per_cluster_and_refusals() -> None:
    x = torch.rand(5, 3)
    assert sorted(kmeans(x, 5).assignments.tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="non-empty clusters"):
        kmeans(x, 6)
    with pytest.raises(ValueError, match="NaN"):
        kmeans(torch.tensor([[0.0], [float("nan")]]), 1)


def test_same_seed_same_clustering() -> None:
    x = torch.rand(200, 8)
    a, b = kmeans(x, 7, seed=3), kmeans(x, 7, seed=3)
    assert torch.equal(a.assignments, b.assignments) and torch.equal(a.centroids, b.centroids)
    c = kmeans(x, 7, seed=4)
    assert not torch.equal(a.centroids, c.centroids)  # another seed starts elsewhere
