"""Two views of one volume: two random crops that overlap, both resized to one shape.

Two-view methods (MoCo, BYOL, PCRL, Swin UNETR's contrastive term) learn that two crops of the same place are "the
same". Following PCRL's pair extraction (Zhou et al., ICCV 2021: crop sizes drawn from several scales, pairs with an
intersection over union above 0.25, both resized to one network input size), :class:`RandCropPaird` draws, per
sample, two boxes of random size whose IoU reaches ``min_overlap`` and resizes both crops to ``roi_size``. It
returns a list of ``num_samples`` dicts, like :class:`monai.transforms.RandSpatialCropSamplesd`, so later transforms
apply per pair and the data loader flattens the pairs into the batch.

Each view gets a clean copy (``target``, ``target2``) before any augmentation: per-view augmentations then follow as
ordinary MONAI transforms, geometric ones on ``[image, target]`` (one instance, so both get the same flip) and
intensity ones and corruptions on ``image`` only, so the restoration target is the un-distorted view.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, Resize
from monai.utils import convert_to_tensor

from common.transforms.corruption import as_pair

__all__ = ["Box", "RandCropPaird", "box_iou"]

#: A box as ``(start, size)`` per spatial axis.
Box = tuple[tuple[int, int], ...]


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two axis-aligned boxes given as ``((start, size), ...)`` per axis."""
    if len(a) != len(b):
        raise ValueError(f"boxes of different dimensions: {a} and {b}.")
    inter = 1
    for (sa, na), (sb, nb) in zip(a, b):
        inter *= max(0, min(sa + na, sb + nb) - max(sa, sb))
    vol_a = int(np.prod([n for _, n in a]))
    vol_b = int(np.prod([n for _, n in b]))
    return inter / float(vol_a + vol_b - inter)


class RandCropPaird(Randomizable, MapTransform):
    """Crop pairs of overlapping random boxes from a volume; both views resized to ``roi_size``.

    Per pair: each view's edge is ``round(roi_size * s)`` (clipped to the volume) with one scale ``s`` per view,
    uniform in ``scale_range``; the boxes are placed uniformly at random and redrawn (sizes and places) until their
    IoU is at least ``min_overlap``; after ``max_tries`` failed draws the second view takes the first view's box
    (IoU 1), so the overlap is guaranteed. A crop whose size differs from ``roi_size`` is resized (MONAI ``Resize``).
    After a call, :attr:`boxes` holds each pair's two boxes.

    Args:
        keys: the volume key, ``(C, *S)``; the first view replaces it.
        view_key: where the second view goes.
        roi_size: the shape of both views (``-1`` or ``None`` entries are not allowed).
        num_samples: pairs per call.
        scale_range: ``(low, high)`` crop edge relative to ``roi_size`` (PCRL: about (0.5, 1.75) of 64x64x32;
            ``(1, 1)`` for crops of exactly ``roi_size``, no resizing).
        min_overlap: least IoU of the two boxes (PCRL: 0.25; 0 for independent crops).
        max_tries: draws before falling back to identical boxes.
        target_key: a clean copy of the first view (``None`` for none).
        view_target_key: a clean copy of the second view (``None`` for none).
        mode: interpolation of the resizing (``"trilinear"``, ``"area"``, ``"nearest"``...).
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.

    Raises:
        ValueError: invalid sizes or ranges, a ``view_key`` or target key equal to ``keys``, or more than one key.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        view_key: str = "view2",
        roi_size: Sequence[int] = (64, 64, 64),
        num_samples: int = 1,
        scale_range: Sequence[float] = (0.75, 1.25),
        min_overlap: float = 0.25,
        max_tries: int = 100,
        target_key: str | None = "target",
        view_target_key: str | None = "target2",
        mode: str = "trilinear",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"RandCropPaird crops one volume key, got {self.keys}.")
        outputs = [k for k in (view_key, target_key, view_target_key) if k is not None]
        if self.keys[0] in outputs or len(set(outputs)) != len(outputs):
            raise ValueError(f"view_key, target_key and view_target_key must differ from each other and from {self.keys[0]!r}.")
        if any(s is None or int(s) != s or s < 1 for s in roi_size):
            raise ValueError(f"roi_size must be positive integers, got {roi_size!r}.")
        if int(num_samples) != num_samples or num_samples < 1 or int(max_tries) != max_tries or max_tries < 1:
            raise ValueError(f"num_samples and max_tries must be positive integers, got {num_samples!r}, {max_tries!r}.")
        if not 0.0 <= float(min_overlap) <= 1.0:
            raise ValueError(f"min_overlap must lie in [0, 1], got {min_overlap}.")
        self.view_key, self.target_key, self.view_target_key = view_key, target_key, view_target_key
        self.roi_size = tuple(int(s) for s in roi_size)
        self.num_samples = int(num_samples)
        self.scale_range = as_pair("scale_range", scale_range, positive=True)
        self.min_overlap = float(min_overlap)
        self.max_tries = int(max_tries)
        self.resize = Resize(self.roi_size, mode=mode, anti_aliasing=False)
        self.boxes: list[tuple[Box, Box]] = []

    def _box(self, shape: Sequence[int]) -> Box:
        scale = self.R.uniform(*self.scale_range)
        sizes = [min(dim, max(1, int(round(roi * scale)))) for roi, dim in zip(self.roi_size, shape)]
        return tuple((int(self.R.randint(dim - n + 1)), n) for n, dim in zip(sizes, shape))

    def _pair(self, shape: Sequence[int]) -> tuple[Box, Box]:
        for _ in range(self.max_tries):
            first, second = self._box(shape), self._box(shape)
            if box_iou(first, second) >= self.min_overlap:
                return first, second
        return first, first

    def randomize(self, data: Sequence[int]) -> None:
        """Draw ``num_samples`` box pairs for a volume of spatial shape ``data``."""
        self.boxes = [self._pair(data) for _ in range(self.num_samples)]

    def _crop(self, volume: torch.Tensor, box: Box) -> torch.Tensor:
        crop = volume[(slice(None), *(slice(s, s + n) for s, n in box))]
        if tuple(crop.shape[1:]) != self.roi_size:
            crop = convert_to_tensor(self.resize(crop), track_meta=False)
        return crop.clone()

    def __call__(self, data: Mapping[Hashable, Any]) -> list[dict[Hashable, Any]]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return [dict(d) for _ in range(self.num_samples)]
        volume = convert_to_tensor(d[keys[0]], track_meta=False)
        if volume.ndim != len(self.roi_size) + 1:
            raise ValueError(
                f"RandCropPaird: {keys[0]!r} must be channel-first with {len(self.roi_size)} spatial dims (roi_size "
                f"{self.roi_size}), got shape {tuple(volume.shape)}."
            )
        self.randomize(volume.shape[1:])
        samples = []
        for first, second in self.boxes:
            out = dict(d)
            out[keys[0]] = self._crop(volume, first)
            out[self.view_key] = self._crop(volume, second)
            if self.target_key is not None:
                out[self.target_key] = out[keys[0]].clone()
            if self.view_target_key is not None:
                out[self.view_target_key] = out[self.view_key].clone()
            samples.append(out)
        return samples
