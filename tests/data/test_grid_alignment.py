"""Tests of common.data.grid_alignment: slab offsets, exact label placement and the datalist grid check."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from common.data.grid_alignment import check_label_grids, find_slab_offset, label_on_image_grid


def test_find_slab_offset():
    volume = np.arange(4 * 3 * 6).reshape(4, 3, 6)
    assert find_slab_offset(volume[..., 2:5], volume) == 2
    assert find_slab_offset(volume[..., 2:5] + 1000, volume) is None
    assert find_slab_offset(volume[:2, :, :3], volume) is None


def test_label_on_image_grid_places_shifted_and_flipped_crop():
    image_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    crop = np.arange(1, 9, dtype=np.uint8).reshape(2, 2, 2)
    flipped = np.diag([-2.0, 2.0, 2.0, 1.0])
    flipped[0, 3] = 4.0  # x is flipped: crop voxel 0 lies on image voxel 2, crop voxel 1 on image voxel 1
    out = label_on_image_grid(nib.Nifti1Image(crop, flipped), (4, 4, 4), image_affine)
    expected = np.zeros((4, 4, 4), np.uint8)
    expected[1:3, 0:2, 0:2] = crop[::-1]
    np.testing.assert_array_equal(out, expected)


def test_label_on_image_grid_rejects_non_integer_shift():
    image_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    label = nib.Nifti1Image(np.ones((2, 2, 2), np.uint8), np.diag([3.0, 3.0, 3.0, 1.0]))
    with pytest.raises(ValueError, match="integer-shifted crop"):
        label_on_image_grid(label, (4, 4, 4), image_affine)


def test_check_label_grids_names_mismatched_label(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), str(tmp_path / "img.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), str(tmp_path / "ok.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3), np.uint8), np.eye(4)), str(tmp_path / "bad.nii.gz"))
    good = {"labeled": [{"image": "img.nii.gz", "label": "ok.nii.gz"}], "labeled_mr": []}
    check_label_grids(tmp_path, good)
    bad = {**good, "labeled_mr": [{"image": "img.nii.gz", "label": "bad.nii.gz"}]}
    with pytest.raises(RuntimeError, match="bad.nii.gz is not on the grid of img.nii.gz"):
        check_label_grids(tmp_path, bad)
