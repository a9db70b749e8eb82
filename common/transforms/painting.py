"""In-painting and out-painting: hide boxes of the image, or everything but a few boxes (Models Genesis).

Models Genesis (Zhou et al., MedIA 2021):

* **in-painting** fills up to 5 boxes with uniform noise; each box is drawn with probability 0.95 (the
  reference gates the first box too, so 5 % of its in-painting calls change nothing: ``min_boxes=0``
  reproduces that, the default ``min_boxes=1`` always paints one box); box edges are uniform in
  [dim // 6, dim // 3];
* **out-painting** fills the whole image with uniform noise and keeps the original inside one box of edge
  ``dim - s``, ``s`` uniform in [3 dim // 7, 4 dim // 7], plus up to 4 more such boxes, each with probability
  0.95.

In both, boxes keep 3 voxels from the border. The stepwise TransVW code (United) uses one in-painting box
with edges in [10, 20] voxels and one out-painting box of edge ``dim - [10, 20]``, both filled with one
random constant: ``size_range=(10, 20)`` / ``shrink_range=(10, 20)``, ``max_boxes=1``, ``fill="constant"``.

Why custom: MONAI's ``RandCoarseDropout`` (``dropout_holes`` True for in-painting, False for out-painting)
draws box sizes in voxels fixed at construction (here they are fractions of each image's size), a box count
uniform in [holes, max_holes] (here the Genesis chain of 0.95 continuations), places boxes without a margin,
has no per-box random constant fill, and writes into a CPU tensor or array it is given.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from monai.config import KeysCollection

from common.transforms.corruption import RandCorruptiond, as_pair, check_probability, fraction_edge

__all__ = ["FILL_MODES", "RandInPaintd", "RandOutPaintd", "check_boxes_fit", "draw_box"]

FILL_MODES = ("uniform", "constant")

Box = tuple[slice, ...]


def check_boxes_fit(spatial_shape: Sequence[int], edges: Sequence[tuple[int, int]], margin: int) -> None:
    """Raise unless the largest allowed box fits inside the margins along every axis.

    Checked before drawing, so an image that is too small fails on the first call, not at random.
    """
    for axis, (dim, (low, high)) in enumerate(zip(spatial_shape, edges)):
        if low < 1 or dim - high - margin < margin:
            raise ValueError(
                f"boxes with edges in [{low}, {high}] and a margin of {margin} voxels do not fit along spatial axis "
                f"{axis} of size {dim} (spatial shape {tuple(spatial_shape)}); use a larger image, smaller boxes or "
                "a smaller margin."
            )


def draw_box(
    R: np.random.RandomState, spatial_shape: Sequence[int], edges: Sequence[tuple[int, int]], margin: int
) -> Box:
    """Draw one box: edge ``e_i`` uniform in ``edges[i]`` (inclusive), start uniform in
    ``[margin, dim - e_i - margin]``.

    Raises:
        ValueError: see :func:`check_boxes_fit`.
    """
    check_boxes_fit(spatial_shape, edges, margin)
    box = []
    for dim, (low, high) in zip(spatial_shape, edges):
        edge = int(R.randint(low, high + 1))
        start = int(R.randint(margin, dim - edge - margin + 1))
        box.append(slice(start, start + edge))
    return tuple(box)


class _Painting(RandCorruptiond):
    """Shared box-count chain and fill of :class:`RandInPaintd` and :class:`RandOutPaintd`."""

    def __init__(
        self,
        keys: KeysCollection,
        max_boxes: int,
        min_boxes: int,
        box_prob: float,
        margin: int,
        fill: str,
        fill_range: Sequence[float] | None,
        prob: float,
        target_key: str | None,
        allow_missing_keys: bool,
    ) -> None:
        super().__init__(keys, prob=prob, target_key=target_key, allow_missing_keys=allow_missing_keys)
        if int(max_boxes) != max_boxes or max_boxes < 1:
            raise ValueError(f"max_boxes must be a positive integer, got {max_boxes!r}.")
        if int(min_boxes) != min_boxes or not 0 <= min_boxes <= max_boxes:
            raise ValueError(f"min_boxes must be an integer in [0, max_boxes={max_boxes}], got {min_boxes!r}.")
        if int(margin) != margin or margin < 0:
            raise ValueError(f"margin must be a non-negative integer, got {margin!r}.")
        if fill not in FILL_MODES:
            raise ValueError(f"fill must be one of {FILL_MODES}, got {fill!r}.")
        self.max_boxes, self.min_boxes, self.margin = int(max_boxes), int(min_boxes), int(margin)
        self.box_prob = check_probability("box_prob", box_prob)
        self.fill = fill
        self.fill_range = as_pair("fill_range", fill_range)
        self.boxes: list[Box] = []
        self._constant = 0.0

    @abstractmethod
    def _edges(self, spatial_shape: tuple[int, ...]) -> list[tuple[int, int]]:
        """Inclusive ``(low, high)`` box edge per spatial axis for an image of ``spatial_shape``."""

    def randomize_corruption(self, spatial_shape: tuple[int, ...]) -> None:
        edges = self._edges(spatial_shape)
        check_boxes_fit(spatial_shape, edges, self.margin)
        self.boxes = []
        while len(self.boxes) < self.max_boxes and (
            len(self.boxes) < self.min_boxes or self.R.random_sample() < self.box_prob
        ):
            self.boxes.append(draw_box(self.R, spatial_shape, edges, self.margin))
        self._constant = float(self.R.random_sample())

    def _noise(self, img: torch.Tensor, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
        """Fill values for a region of ``shape`` (uniform per voxel, or the call's constant) in the fill range."""
        if self.fill_range is not None:
            low, high = self.fill_range
        else:  # the image's own range, like MONAI RandCoarseDropout's fill_value=None
            low, high = float(img.min()), float(img.max())
        if self.fill == "constant":
            return torch.full(tuple(shape), low + self._constant * (high - low), dtype=dtype, device=img.device)
        values = self.R.uniform(low, high, size=tuple(shape))
        return torch.from_numpy(values).to(device=img.device, dtype=dtype)


class RandInPaintd(_Painting):
    """Replace random boxes of the image by noise (Models Genesis in-painting).

    After a call, :attr:`boxes` holds the painted boxes (tuples of slices over the spatial axes). Boxes may
    overlap. Every channel is painted in the same boxes, with its own noise.

    Args:
        keys: image keys to corrupt, ``(C, H, W[, D])``.
        max_boxes: most boxes per call (Genesis: 5).
        min_boxes: boxes always drawn; each further one is drawn with ``box_prob`` (Genesis: 0, default 1).
        box_prob: probability of each further box (Genesis: 0.95).
        size_fraction: box edges uniform in ``[floor(f0 * dim), floor(f1 * dim)]`` (Genesis: (1/6, 1/3)).
        size_range: box edges in voxels ``(low, high)``; overrides ``size_fraction`` (stepwise TransVW: (10, 20)).
        margin: voxels kept between a box and the border (Genesis: 3).
        fill: ``"uniform"`` noise per voxel (Genesis) or one random ``"constant"`` per call (stepwise TransVW).
        fill_range: range of the fill values (CT preset: (0, 1)); ``None`` for each image's min and max.
        prob: probability of applying the transform.
        target_key: where the clean image goes when absent; ``None`` for no target.
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        max_boxes: int = 5,
        min_boxes: int = 1,
        box_prob: float = 0.95,
        size_fraction: Sequence[float] = (1 / 6, 1 / 3),
        size_range: Sequence[int] | None = None,
        margin: int = 3,
        fill: str = "uniform",
        fill_range: Sequence[float] | None = (0.0, 1.0),
        prob: float = 1.0,
        target_key: str | None = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(
            keys, max_boxes, min_boxes, box_prob, margin, fill, fill_range, prob, target_key, allow_missing_keys
        )
        self.size_fraction = as_pair("size_fraction", size_fraction, positive=True)
        if self.size_fraction[1] > 1:
            raise ValueError(f"size_fraction must lie in (0, 1], got {size_fraction!r}.")
        self.size_range = as_pair("size_range", size_range, integer=True, positive=True)

    def _edges(self, spatial_shape: tuple[int, ...]) -> list[tuple[int, int]]:
        if self.size_range is not None:
            return [self.size_range] * len(spatial_shape)
        low, high = self.size_fraction
        return [(max(1, fraction_edge(d, low)), max(1, fraction_edge(d, high))) for d in spatial_shape]

    def corrupt(self, img: torch.Tensor) -> torch.Tensor:
        dtype = img.dtype if img.is_floating_point() else torch.float32
        out = img.to(dtype=dtype, copy=True)
        for box in self.boxes:
            region = (slice(None), *box)
            out[region] = self._noise(img, out[region].shape, dtype)
        return out


class RandOutPaintd(_Painting):
    """Replace everything but a few random boxes by noise (Models Genesis out-painting).

    After a call, :attr:`boxes` holds the kept boxes; the first is always drawn. Every channel keeps the same
    boxes and gets its own noise.

    Args:
        keys: image keys to corrupt, ``(C, H, W[, D])``.
        max_boxes: most kept boxes per call (Genesis: 5, i.e. one plus up to 4 more).
        box_prob: probability of each further box (Genesis: 0.95).
        shrink_fraction: a kept box's edge is ``dim - s``, ``s`` uniform in ``[floor(f0 * dim), floor(f1 * dim)]``
            (Genesis: (3/7, 4/7)).
        shrink_range: ``s`` in voxels ``(low, high)``; overrides ``shrink_fraction`` (stepwise TransVW: (10, 20)).
        margin: voxels kept between a box and the border (Genesis: 3).
        fill: ``"uniform"`` noise per voxel (Genesis) or one random ``"constant"`` per call (stepwise TransVW).
        fill_range: range of the fill values (CT preset: (0, 1)); ``None`` for each image's min and max.
        prob: probability of applying the transform.
        target_key: where the clean image goes when absent; ``None`` for no target.
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        max_boxes: int = 5,
        box_prob: float = 0.95,
        shrink_fraction: Sequence[float] = (3 / 7, 4 / 7),
        shrink_range: Sequence[int] | None = None,
        margin: int = 3,
        fill: str = "uniform",
        fill_range: Sequence[float] | None = (0.0, 1.0),
        prob: float = 1.0,
        target_key: str | None = "target",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, max_boxes, 1, box_prob, margin, fill, fill_range, prob, target_key, allow_missing_keys)
        self.shrink_fraction = as_pair("shrink_fraction", shrink_fraction)
        if not (0 <= self.shrink_fraction[0] and self.shrink_fraction[1] < 1):
            raise ValueError(f"shrink_fraction must lie in [0, 1), got {shrink_fraction!r}.")
        self.shrink_range = as_pair("shrink_range", shrink_range, integer=True)
        if self.shrink_range is not None and self.shrink_range[0] < 0:
            raise ValueError(f"shrink_range must be non-negative, got {shrink_range!r}.")

    def _edges(self, spatial_shape: tuple[int, ...]) -> list[tuple[int, int]]:
        if self.shrink_range is not None:
            return [(d - self.shrink_range[1], d - self.shrink_range[0]) for d in spatial_shape]
        low, high = self.shrink_fraction
        return [(d - fraction_edge(d, high), d - fraction_edge(d, low)) for d in spatial_shape]

    def corrupt(self, img: torch.Tensor) -> torch.Tensor:
        dtype = img.dtype if img.is_floating_point() else torch.float32
        out = self._noise(img, img.shape, dtype)
        for box in self.boxes:
            region = (slice(None), *box)
            out[region] = img[region].to(dtype)
        return out
