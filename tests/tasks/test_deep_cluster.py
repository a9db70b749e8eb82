"""Deep Clustering task: the clustering is state, pseudo-labels come from ids, unseen cubes from their clean cube."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from common.clustering import adjusted_rand_index
from common.networks import ClassificationHead, GenesisEncoder, UnitedModel
from common.tasks import DeepClusterTask


def _model() -> UnitedModel:
    torch.manual_seed(0)
    encoder = GenesisEncoder(base_channels=2, num_levels=2)  # bottleneck: 8 channels
    return UnitedModel(encoder, ClassificationHead(3, 8, num_classes=3, conv_channels=None, hidden_features=None))


def _groups(n_per_group: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(8)[:3] * 5
    labels = torch.arange(3).repeat_interleave(n_per_group)
    return centres[labels] + 0.1 * torch.randn(len(labels), 8, generator=g), labels


def _task(num_cubes: int = 30, pca_dim: int = 2, **kwargs) -> DeepClusterTask:
    task = DeepClusterTask(num_clusters=3, num_cubes=num_cubes, pca_dim=pca_dim, **kwargs)
    task.setup(_model())
    return task


def test_state_is_buffers_sized_from_the_model() -> None:
    task = _task()
    state = task.state_dict()
    assert set(state) == {"assignments", "centroids", "pca_mean", "pca_projection", "class_weights", "clusterings"}
    assert state["assignments"].tolist() == [-1] * 30 and state["pca_projection"].shape == (8, 2)
    assert not list(task.parameters())  # nothing trainable: the trainer accepts it
    with pytest.raises(RuntimeError, match="no clustering yet"):
        task({"head": torch.zeros(2, 3)}, {"cube_id": torch.tensor([0, 1])})


def test_recluster_finds_the_groups_and_reports_stability() -> None:
    task = _task()
    features, groups = _groups()  # 3 groups span 2 principal directions: whitening more would blow up the noise
    stats = task.recluster(features, seed=0)
    assert adjusted_rand_index(task.assignments, groups) == pytest.approx(1.0)
    assert "cluster_nmi" not in stats and stats["cluster_largest"] == pytest.approx(1 / 3)
    assert int(task.clusterings) == 1
    torch.testing.assert_close(task.class_weights, torch.ones(3))  # balanced groups
    stats = task.recluster(features, seed=5)  # another seed, the same groups: the clustering is stable
    assert stats["cluster_nmi"] == pytest.approx(1.0) and stats["cluster_ari"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="30 fixed cubes"):
        task.recluster(features[:20], seed=0)


def test_loss_reads_the_pseudo_label_of_each_id_with_class_weights() -> None:
    task = _task(num_cubes=4)
    task.assignments.copy_(torch.tensor([0, 0, 0, 1]))
    task.class_weights.copy_(torch.tensor([4 / 9, 4 / 3, 1.0]))
    task.clusterings.fill_(1)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    loss, logs = task({"head": logits}, {"cube_id": torch.tensor([2, 3])})
    ce = [-F.log_softmax(logits[0], 0)[0], -F.log_softmax(logits[1], 0)[1]]
    expected = (4 / 9 * ce[0] + 4 / 3 * ce[1]) / (4 / 9 + 4 / 3)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert logs["accuracy"] == 1.0
    unbalanced = DeepClusterTask(3, 4, pca_dim=2, balanced=False)
    unbalanced.setup(_model())
    unbalanced.load_state_dict(task.state_dict())
    assert unbalanced({"head": logits}, {"cube_id": torch.tensor([2, 3])})[0].item() == pytest.approx(
        float(sum(ce) / 2), rel=1e-6
    )
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        task({"head": logits}, {"cube_id": torch.tensor([2, 4])})


def test_cubes_without_id_are_labelled_from_their_clean_cube_in_eval_only() -> None:
    model = _model().eval()
    task = _task(num_cubes=6)
    cubes = torch.rand(6, 1, 8, 8, 8)
    with torch.no_grad():
        pooled = model.encoder(cubes)[-1].mean(dim=(2, 3, 4))
    task.recluster(pooled, seed=0)
    task.eval()
    batch = {"image": torch.rand(6, 1, 8, 8, 8), "target": cubes}
    outputs = task.run(model, batch)
    # the nearest centroid of a clustered cube's own features is its cluster (k-means converged)
    assert torch.equal(outputs.model["pseudo_label"], task.assignments)
    loss, logs = task(outputs.model, batch)
    assert math.isfinite(loss.item()) and 0 <= logs["accuracy"] <= 1
    task.train()
    with pytest.raises(KeyError, match="CubeIdDataset"):
        task.run(model, batch)


def test_too_few_cubes_for_the_clusters_is_refused() -> None:
    with pytest.raises(ValueError, match="smaller than num_clusters"):
        DeepClusterTask(num_clusters=10, num_cubes=8)
    with pytest.raises(RuntimeError, match="setup"):
        DeepClusterTask(3, 3).recluster(torch.rand(3, 8), seed=0)
