"""Deterministic data splits for annotation-efficiency experiments: regions, labelled pools and nested label fractions.

* :func:`write_region` keeps a slab of a volume along its superior-inferior axis (by fraction of its extent), so a
  benchmark can pretrain on one region of a subject and monitor or test on another without sharing a voxel.
* :func:`resample_pair` puts an image and its label map on a task's grid (RAS, given spacing) with MONAI transforms.
* A *labelled pool* is a list of units (axial slabs of a volume for segmentation, organ-centre points for patch
  classification); a label fraction annotates a subset of it. :func:`nested_fractions` and :func:`nested_points`
  draw the subsets from one seeded permutation, so the 10 % set lies inside the 25 % set and so on, and keep at
  least one positive unit (or one point per class) in every subset.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import nibabel as nib
import numpy as np

from common.data.nifti_io import save_nifti

__all__ = [
    "write_region",
    "resample_pair",
    "class_map",
    "slab_windows",
    "nested_fractions",
    "spread_points",
    "nested_points",
    "write_point_map",
]


def write_region(src: str | os.PathLike, dest: str | os.PathLike, start: float, stop: float) -> tuple[int, int]:
    """Write the part of a volume between fractions ``start`` and ``stop`` of its inferior-to-superior extent.

    The volume is first brought to the closest RAS orientation (no resampling), so fraction 0 is the most inferior
    slice; the affine of the slab keeps every voxel at its world position.

    Args:
        src: the NIfTI volume (image or label map).
        dest: where to write the slab.
        start: lower fraction in [0, 1).
        stop: upper fraction in (start, 1].

    Returns:
        The slab's slice range ``(first, last + 1)`` on the canonical grid.
    """
    if not 0.0 <= start < stop <= 1.0:
        raise ValueError(f"need 0 <= start < stop <= 1, got {start}, {stop}.")
    image = nib.as_closest_canonical(nib.load(os.fspath(src)))
    depth = image.shape[2]
    first, last = int(round(start * depth)), int(round(stop * depth))
    if last <= first:
        raise ValueError(f"{src}: the fractions {start}-{stop} of {depth} slices select no slice.")
    slab = image.slicer[:, :, first:last]
    save_nifti(np.asanyarray(slab.dataobj), slab.affine, dest)
    return first, last


def resample_pair(
    image: str | os.PathLike, label: str | os.PathLike | None, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """An image (bilinear) and its label map (nearest) on a RAS grid of ``spacing``, as the bundles load them.

    Returns:
        ``(image (X, Y, Z) float32, label (X, Y, Z) int16 or None, affine 4x4)``.
    """
    from monai.transforms import Compose, LoadImaged, Orientationd, Spacingd

    keys = ["image"] + (["label"] if label is not None else [])
    load = Compose(
        [
            LoadImaged(keys, ensure_channel_first=True, image_only=True),
            Orientationd(keys, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
            Spacingd(keys, pixdim=spacing, mode=["bilinear", "nearest"][: len(keys)]),
        ]
    )
    data = load({"image": os.fspath(image), **({"label": os.fspath(label)} if label is not None else {})})
    affine = np.asarray(data["image"].affine, dtype=np.float64)
    out_label = np.asarray(data["label"][0]).round().astype(np.int16) if label is not None else None
    return np.asarray(data["image"][0], dtype=np.float32), out_label, affine


def class_map(label: np.ndarray, source_labels: Sequence[Sequence[int]]) -> np.ndarray:
    """Task classes ``1..K`` from a label map: class ``i`` is the union of the values ``source_labels[i - 1]``."""
    out = np.zeros(label.shape, dtype=np.uint8)
    for index, values in enumerate(source_labels, start=1):
        out[np.isin(label, list(values))] = index
    return out


def slab_windows(depth: int, thickness: int) -> list[tuple[int, int]]:
    """Non-overlapping axial slabs ``[z0, z1)`` of ``thickness`` slices covering ``depth`` (the last one may be thinner)."""
    if thickness < 1:
        raise ValueError(f"thickness must be positive, got {thickness}.")
    return [(z, min(z + thickness, depth)) for z in range(0, depth, thickness)]


def nested_fractions(positive: Sequence[bool], fractions: Sequence[float], seed: int) -> dict[float, list[int]]:
    """Nested, stratified subsets of a pool of units for each label fraction.

    Positive units (holding the target) and negative ones are permuted separately with ``seed``; fraction ``f``
    takes ``max(1, round(f * P))`` positives and ``ceil(f * N_all) - that`` negatives (never more than exist), so
    every subset has a positive unit, keeps the pool's balance, and each fraction's subset contains the smaller ones.

    Returns:
        ``{fraction: sorted unit indices}``.
    """
    positive = list(map(bool, positive))
    if not any(positive):
        raise ValueError("the labelled pool has no unit holding the target.")
    rng = np.random.default_rng(seed)
    pos = rng.permutation([i for i, p in enumerate(positive) if p]).tolist()
    neg = rng.permutation([i for i, p in enumerate(positive) if not p]).tolist()
    out = {}
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"label fractions must be in (0, 1], got {f}.")
        total = max(1, math.ceil(f * len(positive) - 1e-9))
        k_pos = min(len(pos), max(1, round(f * len(pos))))
        k_neg = min(len(neg), max(0, total - k_pos))
        out[f] = sorted(pos[:k_pos] + neg[:k_neg])
    return out


def spread_points(label: np.ndarray, num_classes: int, per_class: int) -> dict[int, list[tuple[int, ...]]]:
    """Up to ``per_class`` voxels of each class ``1..num_classes``, evenly spread over its voxels in index order.

    The same rule as :class:`~common.transfer.patches.LabelClassPatchesd` (validation patches), applied here to
    define the pool a classification task's label fractions are drawn from.
    """
    out = {}
    for c in range(1, num_classes + 1):
        voxels = np.argwhere(label == c)
        if len(voxels) == 0:
            raise ValueError(f"class {c} has no voxel: it cannot be part of the labelled pool.")
        picks = np.unique(np.linspace(0, len(voxels) - 1, min(per_class, len(voxels))).round().astype(int))
        out[c] = [tuple(int(v) for v in voxels[i]) for i in picks]
    return out


def nested_points(
    pool: Mapping[int, Sequence[tuple[int, ...]]], fractions: Sequence[float], seed: int
) -> dict[float, dict[int, list[tuple[int, ...]]]]:
    """Nested subsets of each class's points: ``max(1, ceil(f * n_c))`` of a seeded permutation per class."""
    rng = np.random.default_rng(seed)
    orders = {c: rng.permutation(len(points)).tolist() for c, points in sorted(pool.items())}
    out = {}
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"label fractions must be in (0, 1], got {f}.")
        out[f] = {c: [pool[c][i] for i in order[: max(1, math.ceil(f * len(order) - 1e-9))]] for c, order in orders.items()}
    return out


def write_point_map(
    shape: Sequence[int], points: Mapping[int, Sequence[tuple[int, ...]]], affine: np.ndarray, dest: str | os.PathLike
) -> int:
    """A label map that is 0 except for the given points (value = their class): sparse annotations for patch
    classification. Returns the number of labelled voxels."""
    out = np.zeros(tuple(shape), dtype=np.uint8)
    for c, coords in points.items():
        for p in coords:
            out[p] = c
    save_nifti(out, affine, dest)
    return int((out > 0).sum())
