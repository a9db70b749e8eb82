"""Patch swapping: exchange pairs of equally sized, non-overlapping patches of the image.

DiRA (Haghighi et al., "DiRA: Discriminative, Restorative, and Adversarial Learning for Self-supervised
Medical Image Analysis", CVPR 2022) distorts the restorative input, 30 % of the time, by 10 swaps of two
patches with edges in [10, 15] pixels, 3 pixels from the border. Its test that the two patches do not
overlap is always true (``y1 < y2 + s or y2 < y1 + s``), so the two patches of a pair can overlap and
the "swap" then duplicates content. Here the two patches of a pair are disjoint by construction (they are
separated along at least one axis; rejection sampling), and each swap exchanges the *current* contents,
so the result is always a permutation of the voxels: nothing is lost or duplicated, even where pairs
overlap each other. The same swap serves as a local "cut and paste" in-painting corruption in 3D
(e.g. for Swin UNETR-style restoration).

Why custom: MONAI has no patch-exchange transform (``RandCoarseShuffle`` shuffles voxels inside a region).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.config import KeysCollection

from common.transforms.corruption import RandCorruptiond, as_pair

__all__ = ["RandPatchSwapd", "boxes_overlap"]

Box = tuple[slice, ...]

_MAX_ATTEMPTS = 1000


def boxes_overlap(a: Box, b: Box) -> bool:
    """Whether two boxes (tuples of slices with steps of 1) share at least one voxel."""
    return all(x.start < y.stop and y.start < x.stop for x, y in zip(a, b))


class RandPatchSwapd(RandCorruptiond):
    """Swap pairs of random non-overlapping patches of the image (DiRA's patch shuffling, fixed).

    After a call, :attr:`pairs` lists the swapped ``(box_a, box_b)`` pairs in the order they were applied.
    Every channel is swapped alike.

    Args:
        keys: image keys to corrupt, ``(C, H, W[, D])``.
        num_swaps: number of swaps (DiRA: 10), or the least number when ``max_swaps`` is given.
        max_swaps: if given, the number of swaps is uniform in ``[num_swaps, max_swaps]``.
        patch_size_range: patch edges in voxels ``(low, high)``, drawn per axis (DiRA: (10, 15)); both patches
            of a pair have the same size.
        margin: voxels kept between a patch and the border (DiRA: 3).
        prob: probability of applying the transform.
        target_key: where the clean image goes when absent; ``None`` for no target.
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.

    Raises:
        ValueError: at call time, if two disjoint patches of the smallest size cannot fit in the image.
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_swaps: int = 10,
        max_swaps: int | None = None,
        patch_size_range: Sequence[int] = (10, 15),
        margin: int = 3,
        prob: float = 1.0,
        target_key: str | None = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, prob=prob, target_key=target_key, allow_missing_keys=allow_missing_keys)
        if int(num_swaps) != num_swaps or num_swaps < 1:
            raise ValueError(f"num_swaps must be a positive integer, got {num_swaps!r}.")
        if max_swaps is not None and (int(max_swaps) != max_swaps or max_swaps < num_swaps):
            raise ValueError(f"max_swaps must be an integer >= num_swaps ({num_swaps}), got {max_swaps!r}.")
        if int(margin) != margin or margin < 0:
            raise ValueError(f"margin must be a non-negative integer, got {margin!r}.")
        self.num_swaps = int(num_swaps)
        self.max_swaps = None if max_swaps is None else int(max_swaps)
        self.patch_size_range = as_pair("patch_size_range", patch_size_range, integer=True, positive=True)
        self.margin = int(margin)
        self.pairs: list[tuple[Box, Box]] = []

    def _check_fits(self, spatial_shape: tuple[int, ...]) -> None:
        smallest = self.patch_size_range[0]
        if not any(dim - 2 * self.margin >= 2 * smallest for dim in spatial_shape):
            raise ValueError(
                f"two disjoint patches of edge {smallest} with a margin of {self.margin} voxels do not fit in spatial "
                f"shape {spatial_shape}: some axis needs at least {2 * smallest + 2 * self.margin} voxels."
            )
        if any(dim - 2 * self.margin < smallest for dim in spatial_shape):
            raise ValueError(
                f"a patch of edge {smallest} with a margin of {self.margin} voxels does not fit in spatial shape "
                f"{spatial_shape}."
            )

    def _draw_pair(self, spatial_shape: tuple[int, ...]) -> tuple[Box, Box]:
        low, high = self.patch_size_range
        for _ in range(_MAX_ATTEMPTS):
            edges = [int(self.R.randint(low, min(high, dim - 2 * self.margin) + 1)) for dim in spatial_shape]
            starts = [
                [int(self.R.randint(self.margin, dim - e - self.margin + 1)) for dim, e in zip(spatial_shape, edges)]
                for _ in range(2)
            ]
            a, b = (tuple(slice(s, s + e) for s, e in zip(start, edges)) for start in starts)
            if not boxes_overlap(a, b):
                return a, b
        raise ValueError(
            f"could not place two disjoint patches of edges in {self.patch_size_range} in spatial shape "
            f"{spatial_shape} after {_MAX_ATTEMPTS} attempts; use smaller patches or a larger image."
        )

    def randomize_corruption(self, spatial_shape: tuple[int, ...]) -> None:
        self._check_fits(spatial_shape)
        count = self.num_swaps if self.max_swaps is None else int(self.R.randint(self.num_swaps, self.max_swaps + 1))
        self.pairs = [self._draw_pair(spatial_shape) for _ in range(count)]

    def corrupt(self, img: torch.Tensor) -> torch.Tensor:
        out = img.clone()
        for a, b in self.pairs:
            region_a, region_b = (slice(None), *a), (slice(None), *b)
            patch_a = out[region_a].clone()
            out[region_a] = out[region_b]
            out[region_b] = patch_a
        return out
