"""Per-sample ids for a dataset of fixed cubes: item ``v`` (a volume) yields cubes ``v * S .. v * S + S - 1``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["CubeIdDataset", "cube_ids"]


def cube_ids(volume: int, samples_per_volume: int) -> list[int]:
    """The ids of the cubes of volume ``volume``: ``volume * S + j`` for ``j < S``."""
    return [volume * samples_per_volume + j for j in range(samples_per_volume)]


class CubeIdDataset(Dataset):
    """Wrap a dataset whose item ``v`` is the list of ``S`` cubes of volume ``v``; add ``id_key`` to every cube.

    The Deep Clustering bundle wraps its training dataset with this (``train#dataloader#dataset``), so the
    pseudo-label of a training cube is ``assignments[cube_id]``. The id depends only on the volume's index in the
    dataset and the cube's place in its list, so the wrapped dataset's data list (``train#dataset#data``, which MONAI
    Label overrides) and the re-clustering handler's dataset must list the same volumes in the same order, and
    their cube transforms must be deterministic (:class:`~common.transforms.FixedCubeSamplesd`).

    Args:
        dataset: e.g. a ``CacheDataset``; item ``v`` a list of ``S`` dicts (or a single dict when ``S == 1``).
        samples_per_volume: ``S``.
        id_key: key of the id (``torch.long`` scalar).
    """

    def __init__(self, dataset: Dataset, samples_per_volume: int, id_key: str = "cube_id") -> None:
        if int(samples_per_volume) != samples_per_volume or samples_per_volume < 1:
            raise ValueError(f"samples_per_volume must be a positive integer, got {samples_per_volume!r}.")
        self.dataset = dataset
        self.samples_per_volume = int(samples_per_volume)
        self.id_key = id_key

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    @property
    def transform(self) -> Any:
        """The wrapped dataset's transform (the trainer saves and restores its random state)."""
        return getattr(self.dataset, "transform", None)

    @property
    def num_cubes(self) -> int:
        """Cubes in the whole dataset."""
        return len(self) * self.samples_per_volume

    def __getitem__(self, index: int) -> Any:
        item = self.dataset[index]
        samples: Sequence[dict] = item if isinstance(item, (list, tuple)) else [item]
        if len(samples) != self.samples_per_volume:
            raise ValueError(
                f"volume {index} gave {len(samples)} cubes, expected samples_per_volume={self.samples_per_volume} "
                "(does the cube transform's num_samples match?)."
            )
        out = []
        for cube_id, sample in zip(cube_ids(int(index), self.samples_per_volume), samples):
            sample = dict(sample)
            sample[self.id_key] = torch.tensor(cube_id, dtype=torch.long)
            out.append(sample)
        return out if isinstance(item, (list, tuple)) else out[0]
