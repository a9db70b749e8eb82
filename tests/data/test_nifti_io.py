"""Tests of common.data.nifti_io: atomic NIfTI writes with qform/sform, loading and atomic copies."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from common.data.atomic import PARTIAL_PREFIX
from common.data.nifti_io import copy_file_atomic, load_nifti, save_nifti


def test_save_nifti_sets_qform_sform_and_units(tmp_path):
    affine = np.array([[-1.5, 0, 0, 40.0], [0, -1.5, 0, 60.0], [0, 0, 2.5, -500.0], [0, 0, 0, 1]])
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    dest = tmp_path / "sub" / "v.nii.gz"
    save_nifti(array, affine, dest)
    img, voxels = load_nifti(dest)
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    assert np.allclose(img.get_qform(), affine) and np.allclose(img.get_sform(), affine)
    assert img.header.get_xyzt_units() == ("mm", "sec")
    assert voxels.dtype == np.int16
    np.testing.assert_array_equal(voxels, array)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["v.nii.gz"]


def test_failed_save_keeps_old_file(tmp_path, monkeypatch):
    dest = tmp_path / "v.nii.gz"
    save_nifti(np.zeros((2, 2, 2), np.uint8), np.eye(4), dest)
    before = dest.read_bytes()

    def broken(img, path):
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_nifti(np.ones((2, 2, 2), np.uint8), np.eye(4), dest)
    assert dest.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(PARTIAL_PREFIX)]


def test_copy_file_atomic(tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("hello")
    copy_file_atomic(src, tmp_path / "out" / "b.txt")
    assert (tmp_path / "out" / "b.txt").read_text() == "hello"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(PARTIAL_PREFIX)]
