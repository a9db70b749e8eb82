"""Label maps: told apart from images by name, folder or values; paired with their images by name."""

from __future__ import annotations

import numpy as np
import pytest

from common.data.label_maps import (
    MAX_LABEL_VALUES,
    label_map_reason,
    label_name_reason,
    label_values_reason,
    pair_labels,
    volume_stem,
)
from common.data.nifti_io import save_nifti


def test_stems_and_name_rules(tmp_path):
    assert volume_stem("a/ct.nii.gz") == "ct" and volume_stem("b.NRRD") == "b" and volume_stem("series_7") == "series_7"
    assert label_name_reason(tmp_path / "case_seg.nii.gz") == "name contains '_seg'"
    assert label_name_reason(tmp_path / "Liver_Label.nii") == "name contains '_Label'"
    assert label_name_reason(tmp_path / "bodymask.mha") == "name contains 'mask'"
    assert label_name_reason(tmp_path / "labels" / "c1.nii.gz", root=tmp_path) == "in a folder named 'labels'"
    assert label_name_reason(tmp_path / "Segmentations" / "x" / "c1.nii.gz", root=tmp_path) is not None
    # only folders below the scanned root count: a user's project folder may be called "labels"
    assert label_name_reason(tmp_path / "labels" / "c1.nii.gz", root=tmp_path / "labels") is None
    for image in ("ct.nii.gz", "case_0000.nii.gz", "labeled_study/ct.nii.gz", "segmented_ct.nii.gz"):
        assert label_name_reason(tmp_path / image, root=tmp_path) is None, image


def test_values_rule_reads_integers_only_and_needs_few_non_negative_values(tmp_path):
    affine = np.eye(4)
    few = np.zeros((12, 12, 10), np.int16)
    few[2:5, 2:5, 2:5], few[6:9, 6:9, 6:9] = 1, 7
    save_nifti(few, affine, tmp_path / "few.nii.gz")
    many = (np.arange(12 * 12 * 10) % (MAX_LABEL_VALUES + 1)).reshape(12, 12, 10).astype(np.uint16)
    save_nifti(many, affine, tmp_path / "many.nii.gz")
    negative = few.copy()
    negative[0, 0, 0] = -1
    save_nifti(negative, affine, tmp_path / "negative.nii.gz")
    save_nifti(few.astype(np.float32), affine, tmp_path / "float.nii.gz")  # floats: judged on the header only
    assert label_values_reason(tmp_path / "few.nii.gz") == "integer volume with 3 distinct values"
    assert label_values_reason(tmp_path / "many.nii.gz") is None
    assert label_values_reason(tmp_path / "negative.nii.gz") is None
    assert label_values_reason(tmp_path / "float.nii.gz") is None
    import itk

    itk.imwrite(itk.image_from_array(few.astype(np.uint8)), str(tmp_path / "few.nrrd"))
    assert label_values_reason(tmp_path / "few.nrrd") == "integer volume with 3 distinct values"
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti")
    assert label_values_reason(tmp_path / "broken.nii.gz") is None  # unreadable: the data check reports it
    assert label_map_reason(tmp_path / "few_seg.nii.gz") == "name contains '_seg'"  # name first, no read


def test_a_ct_slice_settles_it_without_reading_the_volume(tmp_path, monkeypatch):
    import nibabel as nib

    ct = np.full((16, 16, 9), -1000, np.int16)
    ct[4:12, 4:12, :] = np.arange(64, dtype=np.int16).reshape(8, 8, 1) * 20 - 300
    save_nifti(ct, np.eye(4), tmp_path / "ct.nii.gz")
    reads = []
    original = nib.arrayproxy.ArrayProxy.__array__

    def counting(self, *args, **kwargs):
        reads.append(self.shape)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "__array__", counting)
    assert label_values_reason(tmp_path / "ct.nii.gz") is None
    assert reads == []  # only the middle slice was read (slicing does not call __array__)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["d/case1_seg.nii.gz"], [("d/case1.nii.gz", "d/case1_seg.nii.gz")]),
        (["labelsTr/case2.nii.gz"], [("imagesTr/case2_0000.nii.gz", "labelsTr/case2.nii.gz")]),
        (["labels/ct_abdomen_total_fast.nii.gz"], [("images/ct_abdomen.nii.gz", "labels/ct_abdomen_total_fast.nii.gz")]),
        (["labels/ct_abdomen_crop_total.nii.gz"], [("images/ct_abdomen_crop.nii.gz", "labels/ct_abdomen_crop_total.nii.gz")]),
        (["p1/seg.nii.gz"], [("p1/ct.nii.gz", "p1/seg.nii.gz")]),
        (["p1/masks/mask.nii.gz"], [("p1/ct.nii.gz", "p1/masks/mask.nii.gz")]),
        (["p2/ct_label.nii.gz"], [("p2/ct.nii.gz", "p2/ct_label.nii.gz")]),  # nearest folder wins over p1/ct
    ],
)
def test_pairing_by_name(labels, expected):
    images = ["d/case1.nii.gz", "imagesTr/case2_0000.nii.gz", "images/ct_abdomen.nii.gz",
              "images/ct_abdomen_crop.nii.gz", "p1/ct.nii.gz", "p2/ct.nii.gz"]  # fmt: skip
    assert pair_labels(images, labels) == (expected, [])


def test_ambiguous_or_unmatched_labels_stay_unpaired():
    images = ["a/ct.nii.gz", "b/ct.nii.gz", "x/one.nii.gz", "x/two.nii.gz"]
    assert pair_labels(images, ["c/ct_seg.nii.gz", "x/seg.nii.gz", "other_label.nii.gz"]) == (
        [],
        ["c/ct_seg.nii.gz", "x/seg.nii.gz", "other_label.nii.gz"],
    )
