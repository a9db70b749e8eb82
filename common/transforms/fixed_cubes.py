"""A fixed set of cubes per volume: the same crops at every call, so a cube keeps its identity across epochs.

Deep Clustering (Caron et al., ECCV 2018) assigns pseudo-labels to a fixed set of samples and trains a classifier
on them until the next re-clustering; a pseudo-label only keeps its meaning while sample ``i`` stays the same
image. Random crops would change the cube behind every id, so the Deep Clustering bundle crops its cubes with this
deterministic transform instead of ``RandSpatialCropSamplesd``: as it is not ``Randomizable``, ``CacheDataset``
caches the cubes themselves.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform, RandSpatialCropSamplesd
from monai.utils import convert_to_tensor

__all__ = ["FixedCubeSamplesd"]


class FixedCubeSamplesd(MapTransform):
    """Crop ``num_samples`` cubes of ``roi_size`` at positions that depend only on ``seed`` and the volume's shape.

    MONAI's :class:`~monai.transforms.RandSpatialCropSamplesd` does the cropping, re-seeded with ``seed`` before
    every call: calling it twice on the same volume gives the same cubes in the same order (volumes of the same
    shape get the same positions). Returns a list of ``num_samples`` dicts with plain tensors.

    Args:
        keys: image keys cropped alike.
        roi_size: cube size (every volume must be at least this large: pad first).
        num_samples: cubes per volume.
        seed: seed of the positions.
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.
    """

    def __init__(
        self, keys: KeysCollection, roi_size: Sequence[int], num_samples: int, seed: int = 0, allow_missing_keys: bool = False
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if int(num_samples) != num_samples or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}.")
        self.seed = int(seed)
        self.num_samples = int(num_samples)
        self.cropper = RandSpatialCropSamplesd(
            keys, roi_size=roi_size, num_samples=self.num_samples, random_size=False, allow_missing_keys=allow_missing_keys
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict[Hashable, Any]]:
        self.cropper.set_random_state(seed=self.seed)
        samples = self.cropper(dict(data))
        for sample in samples:
            for key in self.key_iterator(sample):
                sample[key] = convert_to_tensor(sample[key], track_meta=False)
        return samples
