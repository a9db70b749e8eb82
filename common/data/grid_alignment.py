"""Voxel-grid alignment: finding a crop inside its volume and putting label maps on their image's grid.

Everything here is exact: grids may differ by axis order, axis directions and an integer voxel
shift, never by a resampling.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def find_slab_offset(crop: np.ndarray, volume: np.ndarray) -> int | None:
    """Returns ``k`` such that ``crop == volume[..., k:k + crop.shape[2]]``, or None."""
    if crop.shape[:2] != volume.shape[:2] or crop.shape[2] > volume.shape[2]:
        return None
    for k in range(volume.shape[2] - crop.shape[2] + 1):
        if np.array_equal(crop[..., 0], volume[..., k]) and np.array_equal(crop, volume[..., k : k + crop.shape[2]]):
            return k
    return None


def label_on_image_grid(label: nib.Nifti1Image, shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """Returns a label map placed exactly (no interpolation) on an image's voxel grid.

    The label is first reoriented to the image's axis order and directions; its grid must then be
    the image grid or an integer-shifted crop of it, which is placed into a zero array.

    Args:
        label: the label map.
        shape: the image's spatial shape.
        affine: the image's voxel-to-world affine.

    Returns:
        The label values on the image grid (background 0 outside the label's extent).

    Raises:
        ValueError: if the grids differ by more than a reorientation and an integer shift, or the
            label reaches outside the image.
    """
    target = nib.orientations.io_orientation(affine)
    transform = nib.orientations.ornt_transform(nib.orientations.io_orientation(label.affine), target)
    label = label.as_reoriented(transform)
    mapping = np.linalg.inv(affine) @ label.affine
    shift = mapping[:3, 3]
    if not np.allclose(mapping[:3, :3], np.eye(3), atol=1e-3) or not np.allclose(shift, np.round(shift), atol=1e-2):
        raise ValueError(
            f"Label grid is not an integer-shifted crop of the image grid (voxel mapping {mapping.round(4).tolist()})."
        )
    start = np.round(shift).astype(int)
    data = np.asanyarray(label.dataobj)
    stop = start + np.array(data.shape[:3])
    if (start < 0).any() or (stop > np.array(shape[:3])).any():
        raise ValueError(f"Label extent {start.tolist()}..{stop.tolist()} lies outside the image shape {list(shape)}.")
    out = np.zeros(shape[:3], dtype=data.dtype)
    out[start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]] = data
    return out


def check_label_grids(folder: Path, datalist: dict, keys: tuple[str, ...] = ("labeled", "labeled_mr")) -> None:
    """Checks that every label of a datalist has its image's shape and affine (reads headers only).

    Args:
        folder: the folder the datalist's relative paths are relative to.
        datalist: the datalist dictionary.
        keys: the lists of ``{"image", "label"}`` entries to check; each must be present.

    Raises:
        RuntimeError: naming the first label whose shape or affine differs from its image's.
    """
    for key in keys:
        for entry in datalist[key]:
            img, lab = nib.load(str(folder / entry["image"])), nib.load(str(folder / entry["label"]))
            if img.shape[:3] != lab.shape[:3] or not np.allclose(img.affine, lab.affine, atol=1e-3):
                raise RuntimeError(
                    f"{entry['label']} is not on the grid of {entry['image']}: shapes {lab.shape} vs {img.shape}, "
                    f"affines {lab.affine.round(3).tolist()} vs {img.affine.round(3).tolist()}."
                )


__all__ = ["check_label_grids", "find_slab_offset", "label_on_image_grid"]
