"""Two rotated, in-painted views of one crop: the proxy task of Swin UNETR pretraining (Tang et al., CVPR 2022).

The original pretraining (research-contributions ``SwinUNETR/Pretrain``, ``utils/ops.py``) takes each crop twice
and, for each view independently,

1. rotates it by a random quarter-turn (4 classes, in the plane of the last two spatial axes) - the rotation
   label, and the restoration target (the rotated clean crop: the rotation is *not* undone);
2. drops random blocks (up to 30 % of the voxels, block edges up to 25 % of each size) and fills them with noise;
3. pastes blocks from another crop of the batch over it.

The two views are the positive pair of the contrastive loss. Here step 2 is Models Genesis in-painting
(:class:`~common.transforms.RandInPaintd`: a chain of noise-filled boxes with edges 5-25 % of each size) and
step 3 is :class:`~common.transforms.RandPatchSwapd` within the crop, because a per-sample transform (reproducible,
running in DataLoader workers) cannot see the other crops of a batch. Both keep the target clean.

Why custom: no MONAI transform emits two independently rotated and corrupted views with their labels and targets.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable
from monai.utils import convert_to_tensor

from common.transforms.painting import RandInPaintd
from common.transforms.patch_swap import RandPatchSwapd
from common.transforms.rotation import apply_rotation, rotation_group

__all__ = ["RandSwinViewsd", "VIEW_KEYS"]

#: Output keys of each view: (network input, rotation label, restoration target).
VIEW_KEYS = (("image", "label", "target"), ("view2", "label2", "target2"))
_RESERVED = ("keys", "prob", "target_key", "allow_missing_keys")


def _options(name: str, options: Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``options``, refusing the arguments this transform sets itself."""
    options = dict(options or {})
    reserved = sorted(set(options) & set(_RESERVED))
    if reserved:
        raise ValueError(f"RandSwinViewsd: {name} must not set {reserved} (use inpaint_prob / swap_prob for prob).")
    return {**defaults, **options}


class RandSwinViewsd(Randomizable, MapTransform):
    """Two views of ``keys``' crop, each rotated by a random quarter-turn, then in-painted and patch-swapped.

    Writes, per view ``v`` (keys in :data:`VIEW_KEYS`): the corrupted rotated crop (``image`` / ``view2``: what the
    network sees), the rotation index (``label`` / ``label2``, ``torch.long`` scalars in ``[0, 4)``) and the clean
    rotated crop (``target`` / ``target2``: what the decoder restores). ``set_random_state(seed)`` seeds both
    corruptions too; after a call :attr:`rotations` holds the two rotation indices.

    Args:
        keys: the crop key (one key, ``(C, H, W[, D])``), usually ``"image"``; it is replaced by view 1.
        quarter_turn_axis: spatial axis the quarter-turns are about (original: 0, i.e. turns in the plane of the
            last two axes, which must have equal sizes).
        spatial_dims: 2 or 3.
        inpaint_prob: probability that a view is in-painted.
        inpaint: arguments of :class:`~common.transforms.RandInPaintd` (defaults: up to 60 boxes, each further box
            with probability 0.97, edges 5-25 % of each size, no margin, uniform noise in ``value_range``).
        swap_prob: probability that a view gets patch swaps.
        swap: arguments of :class:`~common.transforms.RandPatchSwapd` (defaults: 1-10 swaps of patches with
            edges 5-25 % of the smallest size, no margin).
        value_range: intensity range of the crops (CT and MRI presets: (0, 1)), the in-painting fill range.
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.
    """

    def __init__(
        self,
        keys: KeysCollection = "image",
        quarter_turn_axis: int = 0,
        spatial_dims: int = 3,
        inpaint_prob: float = 1.0,
        inpaint: Mapping[str, Any] | None = None,
        swap_prob: float = 1.0,
        swap: Mapping[str, Any] | None = None,
        value_range: Sequence[float] | None = (0.0, 1.0),
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"RandSwinViewsd makes two views of one crop: give one key, got {self.keys}.")
        self.rotation_set = rotation_group(
            "c4", spatial_dims, quarter_turn_axis=quarter_turn_axis, half_turn_axis=(quarter_turn_axis + 1) % 3
        )
        self.quarter_turn_axis = quarter_turn_axis
        self.inpaint_options = _options(
            "inpaint",
            inpaint,
            {"max_boxes": 60, "min_boxes": 1, "box_prob": 0.97, "size_fraction": (0.05, 0.25), "margin": 0,
             "fill_range": value_range},
        )  # fmt: skip
        self.swap_options = _options("swap", swap, {})
        self.inpaint_prob, self.swap_prob = inpaint_prob, swap_prob
        self.inpaint = RandInPaintd("image", prob=inpaint_prob, target_key=None, **self.inpaint_options)
        self._swaps: dict[tuple[int, ...], RandPatchSwapd] = {}
        self.rotations: tuple[int, int] = (0, 0)
        self.set_random_state(state=self.R)

    @property
    def num_classes(self) -> int:
        """Number of rotation classes (4)."""
        return len(self.rotation_set)

    def _swap(self, spatial_shape: tuple[int, ...]) -> RandPatchSwapd:
        """The patch swap for crops of ``spatial_shape`` (default patch edges: 5-25 % of the smallest size)."""
        if spatial_shape not in self._swaps:
            smallest = min(spatial_shape)
            defaults = {
                "num_swaps": 1, "max_swaps": 10, "margin": 0,
                "patch_size_range": (max(1, smallest // 20), max(1, smallest // 4)),
            }  # fmt: skip
            swap = RandPatchSwapd("image", prob=self.swap_prob, target_key=None, **_options("swap", self.swap_options, defaults))
            self._swaps[spatial_shape] = swap.set_random_state(state=self.R)
        return self._swaps[spatial_shape]

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> Randomizable:
        super().set_random_state(seed, state)
        for transform in (self.inpaint, *self._swaps.values()):
            transform.set_random_state(state=self.R)  # one stream for rotations and corruptions
        return self

    def randomize(self, data: Any = None) -> None:
        self.rotations = (int(self.R.randint(self.num_classes)), int(self.R.randint(self.num_classes)))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        crop = convert_to_tensor(d[keys[0]], track_meta=False)
        if crop.ndim != self.rotation_set[0].shape[0] + 1:
            raise ValueError(
                f"RandSwinViewsd: {keys[0]!r} must be channel-first with {self.rotation_set[0].shape[0]} spatial dims, "
                f"got shape {tuple(crop.shape)}."
            )
        plane = [s for axis, s in enumerate(crop.shape[1:]) if axis != self.quarter_turn_axis or crop.ndim == 3]
        if len(set(plane)) != 1:
            raise ValueError(
                f"RandSwinViewsd: quarter-turns about axis {self.quarter_turn_axis} need equal sizes in the rotated "
                f"plane, got crop shape {tuple(crop.shape[1:])}; change roi_size or quarter_turn_axis."
            )
        self.randomize()
        swap = self._swap(tuple(int(s) for s in crop.shape[1:]))
        for (image_key, label_key, target_key), index in zip(VIEW_KEYS, self.rotations):
            rotated = apply_rotation(crop, self.rotation_set[index]).contiguous()
            view = swap(self.inpaint({"image": rotated}))["image"]
            d[image_key], d[label_key], d[target_key] = view, torch.tensor(index, dtype=torch.long), rotated.clone()
        return d
