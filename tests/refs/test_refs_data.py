"""common.refs.data: which labeled pairs become reference data, and how many classes the reference task has."""

from __future__ import annotations

import json
import os

import pytest

from common.data import write_phantom_dataset
from common.refs import reference_datalist, reference_entries, reference_labels, reference_num_classes


@pytest.fixture(scope="module")
def mixed_datalist(tmp_path_factory) -> str:
    """The phantom datalist plus one pair of another label set (as the sample data's aorta-only map)."""
    path = write_phantom_dataset(str(tmp_path_factory.mktemp("refs_data")), num_volumes=3, shape=(24, 24, 16))
    data = json.load(open(path))
    data["labeled"].append({**data["labeled"][0], "label_set": "aorta", "num_classes": 2, "subject": "other"})
    json.dump(data, open(path, "w"))
    return path


def test_auto_keeps_the_label_set_most_pairs_use_and_leaves_validation_images_out(mixed_datalist: str) -> None:
    root = os.path.dirname(mixed_datalist)
    validation = os.path.join(root, json.load(open(mixed_datalist))["validation"][0]["image"])
    entries = reference_entries(mixed_datalist, "labeled", "auto", exclude_images=[validation])
    assert len(entries) == 2  # 4 pairs: one of another label set, one the validation volume
    assert all(os.path.realpath(e["image"]) != os.path.realpath(validation) for e in entries)
    assert all(set(e) == {"image", "label", "num_classes"} and os.path.isfile(e["label"]) for e in entries)
    assert reference_num_classes(entries) == 3
    assert len(reference_entries(mixed_datalist, "labeled", None)) == 4
    assert len(reference_entries(mixed_datalist, "labeled", "aorta")) == 1


def test_source_labels_set_the_classes() -> None:
    assert reference_num_classes([{"image": "a"}], [[5], [1, 2]]) == 3
    assert reference_labels([[5], [1, 2]]) == ([5, 1, 2], [1, 2, 2])
    assert reference_labels(None) is None
    with pytest.raises(ValueError, match="num_classes.*refs_source_labels"):
        reference_num_classes([{"image": "a.nii.gz"}])


def test_missing_reference_data_is_refused_with_a_clear_message(mixed_datalist: str, tmp_path) -> None:
    with pytest.raises(ValueError, match="no labeled reference pairs under 'labeled'.*label_set 'liver'"):
        reference_entries(mixed_datalist, "labeled", "liver")
    with pytest.raises(ValueError, match="datalist JSON"):
        reference_entries(None)
    assert reference_datalist(os.path.dirname(mixed_datalist), "auto") == mixed_datalist
    assert reference_datalist(str(tmp_path), "auto") is None  # a folder scan: no labeled pairs to read
