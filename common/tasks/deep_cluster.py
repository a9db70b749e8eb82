"""Deep Clustering task: classify k-means pseudo-labels of a fixed set of cubes; the clustering is the task's state.

DeepCluster (Caron et al., ECCV 2018), as the United framework uses it (Guo et al., MedIA 2024; its code is not
public, see the bundle README): at the start of every epoch the encoder's features of a fixed set of cubes are
PCA-whitened, L2-normalised and clustered by k-means; the cluster of each cube is its pseudo-label until the next
re-clustering, and the head learns to predict it from the (augmented, corrupted) cube. The re-clustering itself is
driven by :class:`~common.handlers.Reclustering` (every epoch, one clustering on rank 0, broadcast); this task holds
the result as buffers (assignments, centroids, whitening), so the checkpoint saves it and a resumed run continues
with the same pseudo-labels.

Cubes outside the clustered set (the validation cubes) are labelled with the nearest centroid of their clean
cube's features, so ``val_dis_accuracy`` is the pseudo-label accuracy on unseen cubes (chance: about ``1 / k``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from common.clustering import (
    adjusted_rand_index,
    fit_whitening,
    kmeans,
    normalized_mutual_information,
    squared_distances,
    whiten,
)
from common.tasks.base import DiscriminativeTask, TaskOutputs, single_view_outputs

__all__ = ["DeepClusterTask", "global_average"]


def global_average(bottleneck: torch.Tensor) -> torch.Tensor:
    """``(B, F, *S)`` -> ``(B, F)``: the mean over the spatial axes (the feature vector that is clustered)."""
    return bottleneck.float().flatten(2).mean(dim=2)


class DeepClusterTask(DiscriminativeTask):
    """Cross-entropy on the pseudo-labels of the cubes' ids; re-clustered by :meth:`recluster`.

    State (buffers, saved in the checkpoint and exported as ``task.pt``): ``assignments`` ``(N,)`` (-1 before the
    first clustering), ``centroids`` ``(k, d)``, ``pca_mean`` ``(F,)``, ``pca_projection`` ``(F, d)``,
    ``class_weights`` ``(k,)`` and ``clusterings`` (how many clusterings so far).

    Args:
        num_clusters: ``k`` (DeepCluster: 10x the number of classes expected).
        num_cubes: ``N``, the size of the fixed cube set (volumes x cubes per volume).
        pca_dim: PCA components kept before k-means (DeepCluster: 256), at most the bottleneck's channels ``F``.
        id_key: batch key of the cubes' ids (training batches).
        clean_key: batch key of the clean cube, used to label cubes without an id (validation).
        balanced: weight the cross-entropy by ``N / (k * cluster size)``, so every cluster counts alike (DeepCluster
            samples images uniformly over the clusters for the same reason: no cluster may dominate).
        kmeans_iterations: most Lloyd iterations per clustering.
        whitening_eps: added to the variances before whitening.
        label_smoothing: passed to :func:`torch.nn.functional.cross_entropy`.

    Shapes:
        ``outputs["head"]``: ``(B, k)`` logits; ``batch[id_key]``: ``(B,)``. Diagnostic: ``accuracy``.
    """

    def __init__(
        self,
        num_clusters: int,
        num_cubes: int,
        pca_dim: int = 256,
        id_key: str = "cube_id",
        clean_key: str = "target",
        balanced: bool = True,
        kmeans_iterations: int = 50,
        whitening_eps: float = 1e-5,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if num_clusters < 2:
            raise ValueError(f"num_clusters must be at least 2, got {num_clusters}.")
        if num_cubes < num_clusters:
            raise ValueError(
                f"the fixed cube set ({num_cubes} cubes) is smaller than num_clusters={num_clusters}: use more cubes "
                "per volume (num_samples), more volumes or fewer clusters."
            )
        if pca_dim < 1:
            raise ValueError(f"pca_dim must be positive, got {pca_dim}.")
        self.num_clusters, self.num_cubes, self.pca_dim = int(num_clusters), int(num_cubes), int(pca_dim)
        self.id_key, self.clean_key = id_key, clean_key
        self.balanced = bool(balanced)
        self.kmeans_iterations = int(kmeans_iterations)
        self.whitening_eps = float(whitening_eps)
        self.label_smoothing = float(label_smoothing)

    def build_state(self, model: nn.Module) -> None:
        channels = getattr(model.encoder, "out_channels", None)
        if not channels:
            raise ValueError("DeepClusterTask needs an encoder with `out_channels` (e.g. GenesisEncoder).")
        features = int(channels[-1])
        dim = min(self.pca_dim, features)
        self.register_buffer("assignments", torch.full((self.num_cubes,), -1, dtype=torch.long))
        self.register_buffer("centroids", torch.zeros(self.num_clusters, dim))
        self.register_buffer("pca_mean", torch.zeros(features))
        self.register_buffer("pca_projection", torch.zeros(features, dim))
        self.register_buffer("class_weights", torch.ones(self.num_clusters))
        self.register_buffer("clusterings", torch.zeros((), dtype=torch.long))

    @property
    def clustered(self) -> bool:
        """Whether a clustering exists (the task can label cubes)."""
        return self.is_set_up and int(self.clusterings) > 0

    def embed(self, bottleneck: torch.Tensor) -> torch.Tensor:
        """``(B, F, *S)`` bottlenecks -> ``(B, d)`` whitened, L2-normalised vectors in the clustering's space."""
        return whiten(global_average(bottleneck), self.pca_mean, self.pca_projection)

    @torch.no_grad()
    def assign(self, bottleneck: torch.Tensor) -> torch.Tensor:
        """The nearest centroid of every cube, ``(B,)`` long, from its bottleneck ``(B, F, *S)``."""
        self._check_clustered()
        return squared_distances(self.embed(bottleneck), self.centroids).argmin(dim=1)

    @torch.no_grad()
    def recluster(self, features: torch.Tensor, seed: int) -> dict[str, float]:
        """Cluster the fixed set anew and store the result; compare with the previous clustering.

        Args:
            features: ``(N, F)`` pooled encoder features of the fixed cubes, row ``i`` = cube id ``i``.
            seed: seed of the k-means++ seeding (the handler passes ``seed + epoch``, so a resumed run redoes the
                clustering of an uninterrupted one).

        Returns:
            ``cluster_nmi`` and ``cluster_ari`` against the previous assignment (absent at the first clustering),
            ``cluster_reseeded`` (empty clusters re-seeded) and ``cluster_largest`` (largest cluster's share).
        """
        if not self.is_set_up:
            raise RuntimeError("DeepClusterTask.recluster before setup(): the trainer sets the task up.")
        if features.shape != (self.num_cubes, self.pca_mean.shape[0]):
            raise ValueError(
                f"expected features of the {self.num_cubes} fixed cubes x {self.pca_mean.shape[0]} channels, got "
                f"{tuple(features.shape)} (num_cubes must equal volumes x cubes per volume of the clustered set)."
            )
        mean, projection = fit_whitening(features, self.pca_projection.shape[1], eps=self.whitening_eps)
        self.pca_mean.copy_(mean)
        self.pca_projection.copy_(projection)
        result = kmeans(
            whiten(features, self.pca_mean, self.pca_projection), self.num_clusters, self.kmeans_iterations, seed=seed
        )
        assignments = result.assignments.to(self.assignments.device)
        counts = torch.bincount(assignments, minlength=self.num_clusters).float()
        stats = {"cluster_reseeded": float(result.reseeded), "cluster_largest": float(counts.max() / self.num_cubes)}
        if self.clustered:
            previous = self.assignments.cpu()
            stats["cluster_nmi"] = normalized_mutual_information(previous, assignments.cpu())
            stats["cluster_ari"] = adjusted_rand_index(previous, assignments.cpu())
        self.assignments.copy_(assignments)
        self.centroids.copy_(result.centroids)
        self.class_weights.copy_(self.num_cubes / (self.num_clusters * counts))
        self.clusterings += 1
        return stats

    def _check_clustered(self) -> None:
        if not self.clustered:
            raise RuntimeError(
                "DeepClusterTask has no clustering yet: the Reclustering handler (method_handlers) clusters the fixed "
                "cubes at the start of every epoch; is it attached?"
            )

    def run(self, network: nn.Module, batch: Mapping[str, torch.Tensor]) -> TaskOutputs:
        outputs = single_view_outputs(network, batch)
        if self.id_key in batch:
            return outputs
        if self.training:
            raise KeyError(
                f"a training batch has no {self.id_key!r} (keys: {sorted(batch)}): the training dataset must be wrapped "
                "in common.clustering.CubeIdDataset so that every cube's pseudo-label can be looked up."
            )
        if self.clean_key not in batch:
            raise KeyError(f"a batch without {self.id_key!r} needs the clean cube {self.clean_key!r} to be labelled.")
        from common.engines.distributed import unwrap  # here: common.engines imports common.tasks

        with torch.no_grad():  # cubes outside the clustered set: the cluster of their clean cube
            labels = self.assign(unwrap(network).encoder(batch[self.clean_key])[-1])
        return TaskOutputs({**outputs.model, "pseudo_label": labels}, outputs.restorations)

    def forward(
        self, outputs: Mapping[str, Any], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if "head" not in outputs:
            raise KeyError("DeepClusterTask needs a head: the model has none.")
        self._check_clustered()
        logits = outputs["head"].float()
        if self.id_key in batch:
            ids = torch.as_tensor(batch[self.id_key], device=logits.device).long().reshape(-1)
            if bool((ids < 0).any()) or bool((ids >= self.num_cubes).any()):
                raise IndexError(f"cube ids must lie in [0, {self.num_cubes}), got {ids.tolist()}.")
            labels = self.assignments[ids]
        elif "pseudo_label" in outputs:
            labels = outputs["pseudo_label"]
        else:
            raise KeyError(f"batch has no {self.id_key!r} and the outputs no 'pseudo_label' (see run()).")
        if labels.shape[0] != logits.shape[0]:
            raise ValueError(f"{labels.shape[0]} pseudo-labels for {logits.shape[0]} logits.")
        weight = self.class_weights if self.balanced else None
        loss = F.cross_entropy(logits, labels, weight=weight, label_smoothing=self.label_smoothing)
        return loss, {"accuracy": (logits.argmax(dim=1) == labels).float().mean().item()}
