"""Rotation pretext task: predict which of a set of distinct proper 3D rotations was applied.

The United/StepwisePretraining Rotation method classifies 8 rotations of a cube, described as
{0, 180} x {0, 90, 180, 270} degrees. Its code produces duplicate (label 0 == label 4) and improper
(reflected) volumes. Here a rotation set is a finite *group* of proper rotations, enumerated by closing a
set of generators, so every label is a distinct rotation with determinant +1:

* ``"d4"`` (8 rotations): quarter-turns about one axis combined with a half-turn about a perpendicular
  axis (the dihedral group; the paper's intended 8 classes). With quarter-turns about the depth axis it
  only needs the two in-plane sizes equal, so it works on 64x64x32 crops too.
* ``"c4"`` (4 rotations): quarter-turns about one axis (Swin UNETR's rotation task; also the 2D task).
* ``"cube"`` (24 rotations): every rotation of the cube (needs a cubic crop).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from functools import lru_cache

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable
from monai.utils import convert_to_tensor

__all__ = ["ROTATION_GROUPS", "rotation_group", "apply_rotation", "RandRotationPretextd"]

ROTATION_GROUPS = ("c4", "d4", "cube")


def _quarter_turn(ndim: int, axis: int) -> np.ndarray:
    """Signed permutation matrix of a +90 degree turn about ``axis`` (3D) or in the plane (2D)."""
    if ndim == 2:
        return np.array([[0, -1], [1, 0]])
    i, j = [a for a in range(3) if a != axis]
    m = np.eye(3, dtype=int)
    m[[i, j], [i, j]] = 0
    m[j, i], m[i, j] = 1, -1
    return m


@lru_cache(maxsize=None)
def _group(name: str, ndim: int, quarter_turn_axis: int, half_turn_axis: int) -> tuple[np.ndarray, ...]:
    if name not in ROTATION_GROUPS:
        raise ValueError(f"rotation group must be one of {ROTATION_GROUPS}, got {name!r}.")
    if ndim == 2 and name != "c4":
        raise ValueError(f"only the 'c4' rotation group exists in 2D, got {name!r}.")
    if ndim == 3 and (quarter_turn_axis == half_turn_axis or not {quarter_turn_axis, half_turn_axis} <= {0, 1, 2}):
        raise ValueError(f"need two different spatial axes in 0..2, got {quarter_turn_axis} and {half_turn_axis}.")
    generators = [_quarter_turn(ndim, quarter_turn_axis)]
    if name == "d4":
        generators.append(np.linalg.matrix_power(_quarter_turn(3, half_turn_axis), 2))
    elif name == "cube":
        generators.append(_quarter_turn(3, half_turn_axis))
    # breadth-first closure from the identity: label 0 is always "not rotated", then by word length
    elements = [np.eye(ndim, dtype=int)]
    frontier = list(elements)
    while frontier:
        new = []
        for m in frontier:
            for g in generators:
                candidate = g @ m
                if not any(np.array_equal(candidate, e) for e in elements):
                    elements.append(candidate)
                    new.append(candidate)
        frontier = new
    for m in elements:
        m.setflags(write=False)
    return tuple(elements)


def rotation_group(
    name: str = "d4", spatial_dims: int = 3, quarter_turn_axis: int = 2, half_turn_axis: int = 0
) -> tuple[np.ndarray, ...]:
    """The rotations of a named group as integer signed-permutation matrices, identity first.

    Args:
        name: ``"c4"``, ``"d4"`` or ``"cube"``.
        spatial_dims: 2 or 3.
        quarter_turn_axis: spatial axis the quarter-turns are about (3D).
        half_turn_axis: spatial axis of the second generator (half-turn for ``d4``, quarter-turn for ``cube``).

    Returns:
        A tuple of ``(spatial_dims, spatial_dims)`` matrices ``M``; a voxel at centred coordinate ``x`` moves to ``M x``.
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
    return _group(name, spatial_dims, quarter_turn_axis, half_turn_axis)


def _permutation_and_signs(rotation: np.ndarray) -> tuple[list[int], list[int]]:
    perm = [int(np.flatnonzero(row)[0]) for row in rotation]
    signs = [int(rotation[i, p]) for i, p in enumerate(perm)]
    return perm, signs


def apply_rotation(img: torch.Tensor, rotation: np.ndarray) -> torch.Tensor:
    """Rotate a channel-first image by a signed permutation matrix (exact, no interpolation).

    Args:
        img: ``(C, *S)`` tensor.
        rotation: ``(d, d)`` signed permutation matrix with ``d = img.ndim - 1``.

    Returns:
        ``(C, *S')`` where ``S'_i = S_{p(i)}``; the voxel at centred coordinate ``x`` moves to ``rotation @ x``.
    """
    perm, signs = _permutation_and_signs(rotation)
    out = img.permute(0, *[p + 1 for p in perm])
    flips = [i + 1 for i, s in enumerate(signs) if s < 0]
    return out.flip(flips) if flips else out


class RandRotationPretextd(Randomizable, MapTransform):
    """Rotate the image by a random member of a rotation group; emit the class and the un-rotated target.

    Reads ``keys`` (channel-first ``(C, *S)``), rotates them all by the same rotation, writes the rotation's
    index to ``label_key`` (``torch.long`` scalar) and, when ``target_key`` is set, a copy of the un-rotated
    first key to ``target_key`` (the restoration target: the decoder must undo the rotation, as in the
    United Rotation method).

    Args:
        keys: image keys to rotate.
        label_key: where the rotation index goes.
        target_key: where the un-rotated image goes, or ``None``.
        group: ``"c4"``, ``"d4"`` (8 classes, default) or ``"cube"`` (24).
        quarter_turn_axis: spatial axis of the quarter-turns.
        half_turn_axis: spatial axis of the second generator.
        allow_missing_keys: passed to :class:`~monai.transforms.MapTransform`.

    Raises:
        ValueError: if a rotation of the group would change the image's shape (e.g. quarter-turns about
            depth on a crop whose height and width differ).
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "label",
        target_key: str | None = "target",
        group: str = "d4",
        spatial_dims: int = 3,
        quarter_turn_axis: int = 2,
        half_turn_axis: int = 0,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.label_key = label_key
        self.target_key = target_key
        self.rotations = rotation_group(group, spatial_dims, quarter_turn_axis, half_turn_axis)
        self.group = group
        self._index = 0

    @property
    def num_classes(self) -> int:
        """Number of distinct rotations, i.e. of pretext classes."""
        return len(self.rotations)

    def randomize(self, data: object = None) -> None:
        self._index = int(self.R.randint(self.num_classes))

    def _check_shape(self, shape: Sequence[int], key: Hashable) -> None:
        spatial = list(shape[1:])
        if len(spatial) != self.rotations[0].shape[0]:
            raise ValueError(f"{key!r}: expected {self.rotations[0].shape[0]} spatial dims, got shape {tuple(shape)}.")
        for rotation in self.rotations:
            perm, _ = _permutation_and_signs(rotation)
            if [spatial[p] for p in perm] != spatial:
                raise ValueError(
                    f"{key!r}: rotation group {self.group!r} changes the shape of a {tuple(spatial)} image; "
                    "use a crop with equal sizes along the rotated axes or another quarter_turn_axis."
                )

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize()
        rotation = self.rotations[self._index]
        first = True
        for key in self.key_iterator(d):
            img = convert_to_tensor(d[key], track_meta=False)
            self._check_shape(img.shape, key)
            if first and self.target_key is not None:
                d[self.target_key] = img.clone()
            first = False
            d[key] = apply_rotation(img, rotation).contiguous()
        d[self.label_key] = torch.tensor(self._index, dtype=torch.long)
        return d
