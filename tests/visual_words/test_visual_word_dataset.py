"""The visual-word datalist: paths kept valid, and a bundle whose grid or classes differ is stopped with the reason."""

from __future__ import annotations

import json

import pytest

from common.data.errors import DataError
from common.visual_words import INFO_KEY, check_visual_word_datalist, class_centres, require_visual_words
from common.visual_words.dataset import rebase_entries

SPACE = {"orientation": "RAS", "spacing": [3.0, 3.0, 3.0], "intensity_preset": "ct", "foreground_threshold": 0.25,
         "roi_size": [32, 32, 32]}  # fmt: skip


def _write(tmp_path, info) -> str:
    path = tmp_path / "visual_words.json"
    path.write_text(json.dumps({"unlabeled": [], INFO_KEY: info}), encoding="utf-8")
    return str(path)


def _info(**changes) -> dict:
    classes = [{"label": 1, "relative_center": [0.2, 0.3, 0.4]}, {"label": 0, "relative_center": [0.5, 0.5, 0.5]}]
    return {"num_classes": 2, "space": dict(SPACE), "classes": classes, **changes}


def test_a_matching_dataset_passes_and_gives_the_class_centres_in_label_order(tmp_path) -> None:
    path = _write(tmp_path, _info())
    assert check_visual_word_datalist(path, 2, {**SPACE, "spacing": (3, 3, 3.0)})["num_classes"] == 2  # 3 == 3.0
    assert class_centres(path) == [[0.5, 0.5, 0.5], [0.2, 0.3, 0.4]]


def test_every_mismatch_is_named_with_both_values(tmp_path) -> None:
    path = _write(tmp_path, _info())
    bundle_space = {**SPACE, "spacing": None, "roi_size": [64, 64, 32]}
    with pytest.raises(DataError) as error:
        check_visual_word_datalist(path, 44, bundle_space, bundle="bundles/transvw")
    message = str(error.value)
    assert "num_classes: the dataset has 2 classes, the bundle 44" in message
    assert "spacing: discovered with [3.0, 3.0, 3.0], the bundle loads with None" in message
    assert "roi_size: discovered with [32, 32, 32], the bundle loads with [64, 64, 32]" in message
    assert "orientation" not in message and "python tools/discover_visual_words.py bundles/transvw" in message


def test_a_missing_file_names_the_discovery_command(tmp_path) -> None:
    with pytest.raises(DataError, match=r"No visual-word dataset at .*nothing.json.*tools/discover_visual_words.py"):
        require_visual_words(str(tmp_path / "nothing.json"))
    assert require_visual_words(_write(tmp_path, _info())).endswith("visual_words.json")


def test_a_plain_datalist_is_not_taken_for_a_visual_word_one(tmp_path) -> None:
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"unlabeled": [{"image": "a.nii.gz"}]}), encoding="utf-8")
    with pytest.raises(DataError, match="is not a visual-word datalist"):
        check_visual_word_datalist(str(path), 2, SPACE)


def test_rebased_paths_point_at_the_same_files(tmp_path) -> None:
    entries = [{"image": "images/a.nii.gz", "label": "labels/a.nii.gz", "subject": "x"}, {"image": "/abs/b.nii.gz"}]
    out = rebase_entries(entries, tmp_path / "data", tmp_path / "data" / "derived")
    assert out[0] == {"image": "../images/a.nii.gz", "label": "../labels/a.nii.gz", "subject": "x"}
    assert out[1] == {"image": "/abs/b.nii.gz"}  # absolute paths stay
    assert entries[0]["image"] == "images/a.nii.gz"  # the input is not changed
