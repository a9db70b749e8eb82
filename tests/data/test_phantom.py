"""Tests of common.data.phantom: determinism, HU ranges, and a datalist in the sample data's format."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from common.data.datalist import DATALIST_KEYS, load_datalist
from common.data.phantom import PHANTOM_LABELS, make_ct_phantom, make_ct_phantom_with_labels, write_phantom_dataset


def test_phantom_is_deterministic_by_seed():
    a, b, c = make_ct_phantom(seed=1), make_ct_phantom(seed=1), make_ct_phantom(seed=2)
    assert a.dtype == np.float32 and a.shape == (48, 48, 40)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_phantom_values_are_hu_like():
    image, label = make_ct_phantom_with_labels(shape=(40, 36, 32), seed=3)
    assert image.shape == label.shape == (40, 36, 32)
    assert -1024 <= image.min() and image.max() <= 3071
    assert abs(float(np.median(image[0, 0, :])) + 1000) < 50  # air at the border
    assert 500 < float(np.median(image[label == 2])) < 900  # bone
    assert 20 < float(np.median(image[label == 1])) < 140  # organs
    body = (image > -500) & (label == 0)
    assert -20 < float(np.median(image[body])) < 60  # soft tissue
    assert set(np.unique(label)) <= {0, 1, 2} and (label == 1).any() and (label == 2).any()


def test_phantom_rejects_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        make_ct_phantom(shape=(4, 48, 40))


def test_dataset_matches_sample_datalist_format(tmp_path):
    path = write_phantom_dataset(tmp_path, num_volumes=3, shape=(32, 32, 24), seed=5)
    data = json.loads(Path(path).read_text())
    for key in (*DATALIST_KEYS, "name", "description", "modality", "sources", "tool_version", "label_sets"):
        assert key in data, key
    assert data["unlabeled_mr"] == [] and data["labeled_mr"] == []
    assert {e["subject"] for e in data["unlabeled"]}.isdisjoint(e["subject"] for e in data["validation"])
    assert set(data["labeled"][0]["source"]) >= {"package", "version", "license", "member", "label_member"}
    unlabeled = load_datalist(path, "unlabeled")
    assert len(unlabeled) == 2 and len(load_datalist(path, "validation")) == 1
    for entry in load_datalist(path, "labeled"):
        image, label = nib.load(entry["image"]), nib.load(entry["label"])
        assert image.shape == label.shape == (32, 32, 24)
        assert np.allclose(image.affine, label.affine) and np.allclose(image.header.get_zooms(), 3.0)
        assert entry["num_classes"] == len(PHANTOM_LABELS)
    with pytest.raises(ValueError, match="unlabeled_mr"):
        load_datalist(path, "unlabeled_mr")
    np.testing.assert_allclose(
        np.asanyarray(nib.load(unlabeled[1]["image"]).dataobj), make_ct_phantom((32, 32, 24), seed=6)
    )


def test_single_volume_dataset_documents_reuse(tmp_path):
    path = write_phantom_dataset(tmp_path, num_volumes=1)
    data = json.loads(Path(path).read_text())
    assert data["unlabeled"] == data["validation"] and "reuses" in data["description"]
    with pytest.raises(ValueError, match="num_volumes"):
        write_phantom_dataset(tmp_path, num_volumes=0)


def test_phantom_loads_with_monai(tmp_path):
    from monai.transforms import LoadImaged

    path = write_phantom_dataset(tmp_path, num_volumes=2, shape=(24, 24, 16))
    entry = load_datalist(path, "labeled")[0]
    loaded = LoadImaged(keys=["image", "label"], ensure_channel_first=True)(entry)
    assert tuple(loaded["image"].shape) == tuple(loaded["label"].shape) == (1, 24, 24, 16)
    assert float(loaded["image"].min()) >= -1024
