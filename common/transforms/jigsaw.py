"""Jigsaw pretext task in 3D: predict which permutation re-assembled the 2x2x2 sub-cubes of a cube.

United Jigsaw (Guo et al., MedIA 2024; ``StepwisePretraining/Jigsaw``, after Noroozi and Favaro, ECCV 2016): a
cube is split into a 2x2x2 grid of sub-cubes, which are re-assembled in one of ``N`` permutations of a
maximal-Hamming set (:func:`~common.transforms.permutations.hamming_permutations`, N = 1000); a single network sees
the whole re-assembled cube, its head predicts the permutation's index, and its decoder restores the original cube.

A band of voxels around the seams between sub-cubes is blanked so that the network cannot match neighbouring
sub-cubes by the continuity of their borders. Two differences from the official code, both deliberate:

* the band width is a fraction of the cube size (``gap_fraction``, 5/64: voxels 30-34 of a 64^3 cube, as in the
  official code, which hard-codes those indices and fails on any other size);
* the band is blanked *after* re-assembly, at the seams of the shuffled cube. The official code blanks it before
  shuffling, so every sub-cube carries the blank faces of the position it came from: where the blank slabs lie
  inside each sub-cube tells its original position, and the permutation can be read off the gap pattern without
  looking at the anatomy. Here the blanked voxels are the same for every permutation (tested).

The restoration target is the original cube: un-shuffled and without the gap.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable
from monai.utils import convert_to_tensor

from common.transforms.permutations import hamming_permutations
from common.transforms.subcubes import grid_cells, place_cells, seam_band

__all__ = ["RandJigsawd", "gap_width", "jigsaw"]


def gap_width(size: int, gap_fraction: float) -> int:
    """Width in voxels of the blanked band for an axis of ``size``: ``round(size * gap_fraction)``, halves up.

    5/64 of 64 voxels is 5 (the official band); of 32 voxels 3; of 96 voxels 8.
    """
    if not 0.0 <= gap_fraction < 0.5:
        raise ValueError(f"gap_fraction must lie in [0, 0.5), got {gap_fraction!r}.")
    return int(math.floor(size * gap_fraction + 0.5))


def jigsaw(img: torch.Tensor, permutation: np.ndarray, gap_fraction: float = 5 / 64, gap_value: float = 0.0) -> torch.Tensor:
    """Shuffle the 2x2(x2) sub-cubes of ``img`` by ``permutation`` and blank the band around the seams.

    Args:
        img: ``(C, *S)`` with every ``S_d`` even.
        permutation: slot ``i`` of the result receives sub-cube ``permutation[i]`` (cells numbered as in
            :mod:`common.transforms.subcubes`).
        gap_fraction: band width as a fraction of each axis (see :func:`gap_width`).
        gap_value: the value of the blanked voxels (0: air on the CT preset, as in the official code).

    Returns:
        A new ``(C, *S)`` tensor.
    """
    spatial = img.shape[1:]
    out = place_cells(img, permutation, grid_cells(spatial))
    for axis, size in enumerate(spatial):
        band = seam_band(size, gap_width(size, gap_fraction))
        index = [slice(None)] * img.ndim
        index[axis + 1] = band
        out[tuple(index)] = gap_value
    return out


class RandJigsawd(Randomizable, MapTransform):
    """Shuffle the sub-cubes by a random permutation of a maximal-Hamming set; emit its index and the clean target.

    Reads ``keys`` (channel-first ``(C, *S)``, every spatial size even), applies the same permutation to all of them,
    writes the permutation's index to ``label_key`` (``torch.long`` scalar) and a copy of the first key as it was
    (un-shuffled, no gap) to ``target_key``.

    Args:
        keys: image keys to shuffle.
        label_key: where the permutation index goes, in ``[0, num_permutations)``.
        target_key: where the original image goes, or ``None``.
        num_permutations: size of the permutation set (United: 1000; fewer classes for CPU demos).
        permutation_seed: seed of the permutation set (every process generating it gets the same set).
        spatial_dims: 3 (8 sub-cubes) or 2 (4 tiles).
        gap_fraction: width of the blanked band around the seams as a fraction of the size (United: 5/64).
        gap_value: value of the blanked voxels.
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "label",
        target_key: str | None = "target",
        num_permutations: int = 1000,
        permutation_seed: int = 0,
        spatial_dims: int = 3,
        gap_fraction: float = 5 / 64,
        gap_value: float = 0.0,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if target_key is not None and target_key in self.keys:
            raise ValueError(f"target_key {target_key!r} is also in keys {self.keys}: the target must stay clean.")
        gap_width(64, gap_fraction)  # validates the fraction
        self.label_key = label_key
        self.target_key = target_key
        self.spatial_dims = spatial_dims
        self.permutations = hamming_permutations(num_permutations, 2**spatial_dims, permutation_seed)
        self.gap_fraction = float(gap_fraction)
        self.gap_value = float(gap_value)
        self._index = 0

    @property
    def num_classes(self) -> int:
        """Number of permutations, i.e. of pretext classes."""
        return len(self.permutations)

    def randomize(self, data: object = None) -> None:
        self._index = int(self.R.randint(self.num_classes))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize()
        first = True
        for key in self.key_iterator(d):
            img = convert_to_tensor(d[key], track_meta=False)
            if img.ndim != self.spatial_dims + 1:
                raise ValueError(
                    f"RandJigsawd: {key!r} must be channel-first with {self.spatial_dims} spatial dims, "
                    f"got shape {tuple(img.shape)}."
                )
            if any(s % 2 for s in img.shape[1:]):
                raise ValueError(f"RandJigsawd: {key!r} needs even spatial sizes to split in 2, got {tuple(img.shape)}.")
            if first and self.target_key is not None:
                d[self.target_key] = img.clone()
            first = False
            d[key] = jigsaw(img, self.permutations[self._index], self.gap_fraction, self.gap_value)
        d[self.label_key] = torch.tensor(self._index, dtype=torch.long)
        return d
