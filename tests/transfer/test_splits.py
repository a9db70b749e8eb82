"""Deterministic splits: regions keep world positions, nested stratified label fractions, organ-centre pools."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from common.data.nifti_io import save_nifti
from common.transfer.splits import (
    class_map,
    nested_fractions,
    nested_points,
    resample_pair,
    slab_windows,
    spread_points,
    write_point_map,
    write_region,
)


def _lps_volume(path: str) -> np.ndarray:
    """A 4 x 5 x 10 volume stored LPS (x and y flipped) whose voxel value is its RAS slice index along z."""
    data = np.broadcast_to(np.arange(10, dtype=np.float32), (4, 5, 10)).copy()
    affine = np.array([[-2.0, 0, 0, 10], [0, -2.0, 0, 20], [0, 0, 3.0, -30], [0, 0, 0, 1]])
    save_nifti(data, affine, path)
    return affine


def test_region_keeps_world_positions_and_splits_without_overlap(tmp_path) -> None:
    src = str(tmp_path / "vol.nii.gz")
    affine = _lps_volume(src)
    low = write_region(src, tmp_path / "low.nii.gz", 0.0, 0.75)
    high = write_region(src, tmp_path / "high.nii.gz", 0.75, 1.0)
    assert low == (0, 8) and high == (8, 10)  # round(0.75 * 10) = 8: disjoint and complete
    top = nib.load(tmp_path / "high.nii.gz")
    assert top.shape == (4, 5, 2) and np.asarray(top.dataobj)[0, 0, 0] == 8
    # slice 8 of the original sits at z = -30 + 3 * 8 in the world, and so does the slab's first slice
    assert np.allclose((top.affine @ [0, 0, 0, 1])[2], (affine @ [0, 0, 8, 1])[2])
    with pytest.raises(ValueError):
        write_region(src, tmp_path / "x.nii.gz", 0.5, 0.5)


def test_resample_pair_and_class_map(tmp_path) -> None:
    image = np.zeros((8, 8, 8), dtype=np.float32)
    label = np.zeros((8, 8, 8), dtype=np.int16)
    label[:4] = 5
    label[4:, :2] = 7
    save_nifti(image, np.diag([2.0, 2.0, 2.0, 1.0]), tmp_path / "i.nii.gz")
    save_nifti(label, np.diag([2.0, 2.0, 2.0, 1.0]), tmp_path / "l.nii.gz")
    img, lab, affine = resample_pair(tmp_path / "i.nii.gz", tmp_path / "l.nii.gz", [4.0, 4.0, 4.0])
    assert img.shape == lab.shape == (4, 4, 4) and np.allclose(np.diag(affine)[:3], 4.0)
    assert set(np.unique(lab)) == {0, 5, 7}  # nearest: no invented label values
    classes = class_map(lab, [[7], [5, 9]])
    assert set(np.unique(classes)) == {0, 1, 2} and (classes[lab == 5] == 2).all() and (classes[lab == 7] == 1).all()


def test_slab_windows() -> None:
    assert slab_windows(20, 8) == [(0, 8), (8, 16), (16, 20)]


def test_nested_fractions_are_nested_stratified_and_seeded() -> None:
    positive = [True] * 4 + [False] * 16
    fractions = [0.1, 0.25, 0.5, 1.0]
    a = nested_fractions(positive, fractions, seed=0)
    assert a == nested_fractions(positive, fractions, seed=0)
    assert a != nested_fractions(positive, fractions, seed=1)
    assert [len(a[f]) for f in fractions] == [2, 5, 10, 20]
    for small, large in zip(fractions, fractions[1:]):
        assert set(a[small]) <= set(a[large])
    for f in fractions:
        picked_pos = sum(positive[i] for i in a[f])
        assert picked_pos == max(1, round(f * 4))  # in proportion, never none


def test_points_pool_and_nested_subsets(tmp_path) -> None:
    label = np.zeros((10, 10, 10), dtype=np.uint8)
    label[:5] = 1
    label[9, 9, 9] = 2
    pool = spread_points(label, 2, per_class=10)
    assert len(pool[1]) == 10 and pool[2] == [(9, 9, 9)]
    assert pool[1][0] == (0, 0, 0) and pool[1][-1] == (4, 9, 9)  # first and last voxel of class 1
    subsets = nested_points(pool, [0.25, 1.0], seed=3)
    assert len(subsets[0.25][1]) == 3 and len(subsets[0.25][2]) == 1  # ceil(2.5) and at least one
    assert set(subsets[0.25][1]) <= set(subsets[1.0][1]) and len(subsets[1.0][1]) == 10
    n = write_point_map(label.shape, subsets[0.25], np.eye(4), tmp_path / "points.nii.gz")
    written = np.asarray(nib.load(tmp_path / "points.nii.gz").dataobj)
    assert n == 4 and written[9, 9, 9] == 2 and all(written[p] == 1 for p in subsets[0.25][1])
    with pytest.raises(ValueError, match="class 3"):
        spread_points(label, 3, per_class=2)
