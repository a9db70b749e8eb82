"""Re-cluster the fixed cube set at the start of every epoch (Deep Clustering): one clustering for all ranks.

DeepCluster (Caron et al., ECCV 2018) alternates two steps: cluster the features of the whole (fixed) training set
into pseudo-labels, then train the network to predict them for one epoch. Because cluster indices mean nothing from
one clustering to the next, the classifier's last layer is re-initialised after each clustering, and its optimizer
state with it (momenta of the old classes would push the new ones).

Under ``torch.distributed`` every rank computes the features of its share of the volumes, the features are gathered,
rank 0 clusters them and the result (the task's state) is broadcast, so every rank trains on the same pseudo-labels;
the last layer is re-initialised from a generator seeded alike on every rank.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from torch import nn
from torch.utils.data import Dataset

from common.clustering.cube_ids import cube_ids
from common.engines.distributed import all_gather, broadcast_module, is_distributed, rank, unwrap, world_size
from common.tasks.deep_cluster import global_average

__all__ = ["Reclustering", "last_linear", "reinitialise_linear"]

#: What a re-clustering logs into ``engine.state.metrics`` (hence ``metrics.jsonl`` and TensorBoard), per epoch.
STATS = ("cluster_nmi", "cluster_ari", "cluster_reseeded", "cluster_largest")


def last_linear(module: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of ``module`` in registration order: the classifier's output layer."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(module).__name__} has no nn.Linear layer to re-initialise.")
    return linears[-1]


@torch.no_grad()
def reinitialise_linear(layer: nn.Linear, seed: int) -> None:
    """Re-draw ``layer``'s weights as ``nn.Linear`` does by default, from a generator seeded with ``seed``
    (the same values on every rank and in every run with that seed)."""
    generator = torch.Generator().manual_seed(int(seed))
    weight = torch.empty(layer.weight.shape)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    layer.weight.copy_(weight)
    if layer.bias is not None:
        bound = 1 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
        layer.bias.copy_(torch.empty(layer.bias.shape).uniform_(-bound, bound, generator=generator))


class Reclustering:
    """At every ``interval``-th epoch start: features of the fixed cubes -> ``task.recluster`` -> new last layer.

    The task must be a :class:`~common.tasks.DeepClusterTask`; the trainer a
    :class:`~common.engines.UnitedTrainer` (``engine.task``, ``engine.network``, ``engine.optimizer``). Features are
    the global average of the encoder's bottleneck, computed in eval mode (BatchNorm running statistics, no
    augmentation) and in float32. The k-means seed is ``seed + epoch``: a resumed run clusters exactly as the
    uninterrupted run would have. In the epochs that re-cluster, ``engine.state.metrics`` receives ``cluster_nmi`` and
    ``cluster_ari`` (agreement with the previous clustering, from the second one on), ``cluster_reseeded`` and
    ``cluster_largest``; the other epochs log none of them.

    Args:
        dataset: the fixed cubes without augmentation: item ``v`` is the list of ``samples_per_volume`` cube dicts of
            volume ``v`` (the same volumes, in the same order, as the training dataset wrapped by
            :class:`~common.clustering.CubeIdDataset`).
        samples_per_volume: cubes per volume.
        seed: base seed of the k-means seeding and of the last layer's re-initialisation.
        batch_size: cubes per encoder call.
        interval: re-cluster every this many epochs (DeepCluster: 1).
        reinitialise_classifier: re-draw the head's last ``nn.Linear`` and drop its optimizer state after each
            clustering (DeepCluster: yes).
        image_key: key of the cube in the dataset's dicts.
    """

    def __init__(
        self,
        dataset: Dataset,
        samples_per_volume: int,
        seed: int = 0,
        batch_size: int = 16,
        interval: int = 1,
        reinitialise_classifier: bool = True,
        image_key: str = "image",
    ) -> None:
        if samples_per_volume < 1 or batch_size < 1 or interval < 1:
            raise ValueError(
                f"samples_per_volume, batch_size and interval must be positive, got {samples_per_volume}, {batch_size}, "
                f"{interval}."
            )
        self.dataset = dataset
        self.samples_per_volume = int(samples_per_volume)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.interval = int(interval)
        self.reinitialise_classifier = bool(reinitialise_classifier)
        self.image_key = image_key
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        task = getattr(engine, "task", None)
        if task is None or not hasattr(task, "recluster"):
            raise TypeError(f"Reclustering needs a trainer whose task re-clusters (DeepClusterTask), got {type(task).__name__}.")
        expected = len(self.dataset) * self.samples_per_volume  # type: ignore[arg-type]
        if task.num_cubes != expected:
            raise ValueError(
                f"the task expects {task.num_cubes} fixed cubes but the re-clustering dataset has {len(self.dataset)} "  # type: ignore[arg-type]
                f"volumes x {self.samples_per_volume} cubes = {expected}; set the task's num_cubes from the same dataset."
            )
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    @torch.no_grad()
    def features(self, encoder: nn.Module, device: torch.device) -> torch.Tensor:
        """``(N, F)`` pooled bottleneck features of every fixed cube, row = cube id, on every rank.

        Each rank encodes the volumes ``rank, rank + world, ...``; the rows are gathered across ranks.
        """
        volumes = list(range(rank(), len(self.dataset), world_size()))  # type: ignore[arg-type]
        rows, ids = [], []
        for volume in volumes:
            item = self.dataset[volume]
            samples = item if isinstance(item, (list, tuple)) else [item]
            if len(samples) != self.samples_per_volume:
                raise ValueError(
                    f"re-clustering: volume {volume} gave {len(samples)} cubes, expected {self.samples_per_volume}."
                )
            cubes = torch.stack([torch.as_tensor(s[self.image_key]) for s in samples]).to(device=device, dtype=torch.float32)
            rows += [global_average(encoder(chunk)[-1]) for chunk in cubes.split(self.batch_size)]
            ids += cube_ids(volume, self.samples_per_volume)
        channels = int(encoder.out_channels[-1])
        local = torch.cat(rows) if rows else torch.zeros(0, channels, device=device)
        local_ids = torch.tensor(ids, dtype=torch.long, device=device)
        total = len(self.dataset) * self.samples_per_volume  # type: ignore[arg-type]
        if not is_distributed():
            return local[torch.argsort(local_ids)]
        per_rank = math.ceil(len(self.dataset) / world_size()) * self.samples_per_volume  # type: ignore[arg-type]
        padded = torch.zeros(per_rank, channels, device=device)
        padded[: len(local)] = local
        padded_ids = torch.full((per_rank,), -1, dtype=torch.long, device=device)
        padded_ids[: len(local_ids)] = local_ids
        everything, every_id = all_gather(padded, with_grad=False), all_gather(padded_ids, with_grad=False)
        out = torch.zeros(total, channels, device=device)
        valid = every_id >= 0
        out[every_id[valid]] = everything[valid]
        return out

    def __call__(self, engine: Engine) -> None:
        epoch = engine.state.epoch
        for key in STATS:  # an epoch without a clustering logs no cluster statistics (not the previous ones again)
            engine.state.metrics.pop(key, None)
        if (epoch - 1) % self.interval:
            return
        task = engine.task
        model = unwrap(engine.network)
        was_training = model.encoder.training
        model.encoder.eval()
        try:
            features = self.features(model.encoder, engine.state.device)
        finally:
            model.encoder.train(was_training)
        stats = torch.full((len(STATS),), float("nan"), dtype=torch.float64, device=task.centroids.device)
        if rank() == 0:
            result = task.recluster(features, seed=self.seed + epoch)
            stats = torch.tensor([result.get(k, float("nan")) for k in STATS], dtype=torch.float64, device=stats.device)
        if is_distributed():
            broadcast_module(task)  # one clustering: rank 0's
            dist.broadcast(stats, 0)
        if self.reinitialise_classifier:
            layer = last_linear(model.head)
            reinitialise_linear(layer, self.seed + epoch)
            for param in layer.parameters():
                engine.optimizer.state.pop(param, None)
        values = {k: float(v) for k, v in zip(STATS, stats.tolist()) if not math.isnan(v)}
        engine.state.metrics.update(values)
        if rank() == 0:
            self.logger.info(
                f"epoch {epoch}: re-clustered {task.num_cubes} cubes into {task.num_clusters} clusters "
                + ", ".join(f"{k}={v:.3f}" for k, v in values.items())
            )
