"""Where a visual word lies: one coordinate per class, the same anatomical place in every instance volume.

TransVW's self-discovery (Haghighi et al., IEEE TMI 2021; official ``self_discovery/pattern_generator_3D.py``)
samples a random coordinate in a reference volume and crops the *same voxel coordinate* in the reference's nearest
neighbours, assuming that LUNA16 volumes are roughly aligned voxel by voxel. Here volumes come through the bundle's
load transforms, which reorient them, resample them and crop them to the body, so their grids have different
sizes. A class's coordinate is therefore kept **relative to the body box**: ``r`` in ``[0, 1]`` per axis, and the
word's centre in a volume of spatial shape ``S`` is ``round(r * (S - 1))``. This is an affine alignment of the
bodies' bounding boxes in a common orientation: the same place in the same anatomy whatever the padding, the voxel
order on disk or the spacing, and a proportional place across patients of different sizes.

Multi-resolution crops (the official ``--multi_res``): besides the crop of ``roi_size`` at the word's centre, each
instance gets crops whose in-plane size is ``roi * U(scale_range)`` (official: 50-80 voxels for 64) and whose
in-plane centre is shifted by up to ``jitter * roi`` (official: 10 voxels for 64); the depth is kept. They are
resized to ``roi_size`` when cropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from common.transforms.visual_words import crop_box

__all__ = [
    "Box",
    "background_fraction",
    "clamp_center",
    "multi_resolution_boxes",
    "relative_to_voxel",
    "sample_class_centre",
    "valid_relative_range",
]

#: A crop box: ``(center, size)`` in voxels.
Box = tuple[list[int], list[int]]


def relative_to_voxel(relative: Sequence[float], shape: Sequence[int]) -> list[int]:
    """The voxel at relative position ``relative`` of a grid of ``shape``: ``round(r * (S - 1))`` per axis."""
    return [int(round(float(r) * (int(s) - 1))) for r, s in zip(relative, shape)]


def clamp_center(center: Sequence[int], size: Sequence[int], shape: Sequence[int]) -> list[int]:
    """Shift ``center`` so that the box of ``size`` lies inside ``shape`` where it fits (else centre it).

    The box's first voxel is ``center - size // 2`` (as :func:`common.transforms.visual_words.crop_box` crops).
    """
    out = []
    for c, e, s in zip(center, size, shape):
        c, e, s = int(c), int(e), int(s)
        if e <= s:
            c = min(max(c, e // 2), s - e + e // 2)
        else:
            c = s // 2
        out.append(c)
    return out


def valid_relative_range(shapes: Sequence[Sequence[int]], roi_size: Sequence[int]) -> np.ndarray:
    """Relative coordinates whose ``roi_size`` box lies inside every one of ``shapes``, per axis.

    For one grid of size ``S`` the box centred on ``c`` fits when ``roi // 2 <= c <= S - roi + roi // 2``; the
    intersection over grids is the range of the smallest grid, never empty when every grid holds one box.

    Args:
        shapes: spatial shapes of the volumes that will be cropped (the reference, its neighbours, held-out ones).
        roi_size: the crop size.

    Returns:
        ``(ndim, 2)`` array of ``[low, high]`` per axis.

    Raises:
        ValueError: if a grid is smaller than ``roi_size`` along an axis (the load transforms pad to one crop).
    """
    ranges = []
    for axis, edge in enumerate(roi_size):
        low, high = 0.0, 1.0
        for shape in shapes:
            size = int(shape[axis])
            if size < int(edge):
                raise ValueError(f"a volume of spatial shape {list(shape)} is smaller than roi_size {list(roi_size)}.")
            if size == 1:
                continue
            low = max(low, (int(edge) // 2) / (size - 1))
            high = min(high, (size - int(edge) + int(edge) // 2) / (size - 1))
        ranges.append([low, max(low, high)])
    return np.asarray(ranges, dtype=float)


def background_fraction(crop: np.ndarray, threshold: float) -> float:
    """Fraction of voxels at or below ``threshold`` (air and lung for the CT preset's body threshold)."""
    return float(np.mean(np.asarray(crop) <= threshold))


def sample_class_centre(
    rng: np.random.RandomState,
    reference: np.ndarray | torch.Tensor,
    shapes: Sequence[Sequence[int]],
    roi_size: Sequence[int],
    previous: Sequence[Sequence[float]],
    min_distance: float,
    max_background: float,
    background_threshold: float,
    max_tries: int = 200,
) -> list[float] | None:
    """Draw a class's relative coordinate in a reference volume, or ``None`` after ``max_tries`` rejections.

    A draw is uniform in :func:`valid_relative_range` of ``shapes`` (so the crop fits in every instance volume). It
    is rejected when, in the reference's voxels, it lies closer than ``min_distance`` to a previous class (official:
    5 voxels), or when the reference's crop there has more than ``max_background`` of its voxels at or below
    ``background_threshold`` (official: at most 15 % air/lung voxels).

    Args:
        rng: the discovery's random stream.
        reference: the reference volume ``(C, *S)`` after the load transforms.
        shapes: spatial shapes of every volume the class will be cropped from (the reference included).
        roi_size: crop size.
        previous: relative coordinates of the classes drawn so far.
        min_distance: minimum distance to a previous class, in voxels of the reference.
        max_background: largest allowed background fraction of the reference's crop.
        background_threshold: intensity at or below which a voxel is background.
        max_tries: draws before giving up.

    Returns:
        The relative coordinate (one float per spatial axis), or ``None``.
    """
    ranges = valid_relative_range(shapes, roi_size)
    ref_shape = np.asarray(reference.shape[1:], dtype=float)
    previous_arr = np.asarray(previous, dtype=float).reshape(-1, len(roi_size))
    ref_tensor = torch.as_tensor(reference)
    for _ in range(int(max_tries)):
        relative = rng.uniform(ranges[:, 0], ranges[:, 1])
        if len(previous_arr):
            distance = np.linalg.norm((previous_arr - relative) * (ref_shape - 1), axis=1).min()
            if distance < min_distance:
                continue
        center = clamp_center(relative_to_voxel(relative, ref_shape.astype(int)), roi_size, ref_shape.astype(int))
        crop = crop_box(ref_tensor, center, roi_size).numpy()
        if background_fraction(crop, background_threshold) > max_background:
            continue
        return [float(r) for r in relative]
    return None


def multi_resolution_boxes(
    rng: np.random.RandomState,
    center: Sequence[int],
    shape: Sequence[int],
    roi_size: Sequence[int],
    num_scales: int,
    scale_range: Sequence[float],
    jitter: float,
    in_plane: Sequence[int] = (0, 1),
) -> list[Box]:
    """The crops of one instance: the ``roi_size`` box at ``center``, then ``num_scales - 1`` rescaled ones.

    Args:
        rng: the discovery's random stream.
        center: the word's centre in this volume.
        shape: the volume's spatial shape.
        roi_size: crop size.
        num_scales: crops per instance (official ``--multi_res``: 3; 1 for the base crop only).
        scale_range: in-plane size of the extra crops relative to ``roi_size``.
        jitter: largest in-plane shift of the extra crops' centres, as a fraction of ``roi_size``.
        in_plane: the spatial axes that are rescaled and shifted (the axial plane after RAS orientation).

    Returns:
        ``num_scales`` boxes ``(center, size)``, the first the base crop, each shifted to lie inside the volume where
        it fits.
    """
    low, high = float(scale_range[0]), float(scale_range[1])
    boxes: list[Box] = [(clamp_center(center, roi_size, shape), [int(s) for s in roi_size])]
    for _ in range(int(num_scales) - 1):
        scale = rng.uniform(low, high)
        size, shifted = [int(s) for s in roi_size], [int(c) for c in center]
        for axis in in_plane:
            size[axis] = max(1, int(round(roi_size[axis] * scale)))
            reach = int(round(jitter * roi_size[axis]))
            shifted[axis] += int(rng.randint(-reach, reach + 1)) if reach else 0
        boxes.append((clamp_center(shifted, size, shape), size))
    return boxes
