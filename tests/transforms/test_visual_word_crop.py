"""The visual-word crop: the listed boxes with their classes, resized multi-resolution crops, and strict checks."""

from __future__ import annotations

import pytest
import torch

from common.transforms import RandVisualWordCropd, crop_box, crop_word


def _volume(shape=(20, 24, 16)) -> torch.Tensor:
    return torch.arange(int(torch.tensor(shape).prod()), dtype=torch.float32).reshape(1, *shape)


def _entry(words, shape=(20, 24, 16)) -> dict:
    return {"image": _volume(shape), "source_image": "vol.nii.gz", "shape": list(shape), "visual_words": words,
            "subject": "s"}  # fmt: skip


def test_crop_box_is_the_slice_around_the_centre() -> None:
    img = _volume()
    crop = crop_box(img, [10, 12, 8], [4, 6, 5])  # first voxel = centre - size // 2 = (8, 9, 6)
    assert torch.equal(crop, img[:, 8:12, 9:15, 6:11])
    crop[...] = -1  # a copy: the cached volume stays intact
    assert img.min() == 0


def test_crop_box_pads_outside_the_volume_with_zero() -> None:
    img = _volume() + 1  # no zero inside
    crop = crop_box(img, [0, 0, 15], [4, 4, 4])  # starts at (-2, -2, 13), ends at (2, 2, 17)
    assert crop.shape == (1, 4, 4, 4)
    assert torch.equal(crop[:, 2:, 2:, :3], img[:, :2, :2, 13:16])
    assert (crop[:, :2] == 0).all() and (crop[:, :, :2] == 0).all() and (crop[..., 3] == 0).all()
    with pytest.raises(ValueError, match="outside the image"):
        crop_box(img, [40, 5, 5], [4, 4, 4])


def test_crop_word_resizes_a_multi_resolution_box_to_the_roi() -> None:
    img = torch.ones(1, 40, 40, 20)
    img[:, :20] = 0.0  # left half 0, right half 1
    crop = crop_word(img, {"center": [20, 20, 10], "size": [16, 16, 8]}, [8, 8, 8])
    assert crop.shape == (1, 8, 8, 8)
    assert crop[:, :3].max() == 0 and crop[:, 5:].min() == 1  # the split stays in the middle; no darkened border
    same = crop_word(img, {"center": [20, 20, 10], "size": [8, 8, 8]}, [8, 8, 8])
    assert torch.equal(same, crop_box(img, [20, 20, 10], [8, 8, 8]))  # no resize at the roi size


def test_each_output_is_a_listed_word_with_its_class() -> None:
    words = [
        {"label": 0, "center": [5, 5, 5], "size": [4, 4, 4]},
        {"label": 1, "center": [10, 12, 8], "size": [4, 4, 4]},
        {"label": 2, "center": [14, 18, 10], "size": [4, 4, 4]},
    ]
    t = RandVisualWordCropd("image", roi_size=[4, 4, 4], num_samples=3, num_classes=3)
    t.set_random_state(seed=0)
    entry = _entry(words)
    out = t(entry)
    assert len(out) == 3 and sorted(int(o["label"]) for o in out) == [0, 1, 2]  # without replacement
    for o in out:
        word = words[int(o["label"])]
        assert o["label"].dtype == torch.long and o["label"].ndim == 0
        assert torch.equal(o["image"], crop_box(entry["image"], word["center"], word["size"]))
        assert "visual_words" not in o and "shape" not in o and o["subject"] == "s"  # other keys pass


def test_more_samples_than_words_cycle_through_all_of_them() -> None:
    words = [{"label": k, "center": [10, 12, 8], "size": [4, 4, 4]} for k in range(3)]
    t = RandVisualWordCropd("image", roi_size=[4, 4, 4], num_samples=7)
    t.set_random_state(seed=3)
    labels = [int(o["label"]) for o in t(_entry(words))]
    assert sorted(labels[:3]) == [0, 1, 2] and sorted(labels[3:6]) == [0, 1, 2]  # whole permutations first


def test_seeds_reproduce_the_choice() -> None:
    words = [{"label": k, "center": [10, 12, 8], "size": [4, 4, 4]} for k in range(6)]
    a = RandVisualWordCropd("image", roi_size=[4, 4, 4], num_samples=2).set_random_state(seed=5)
    b = RandVisualWordCropd("image", roi_size=[4, 4, 4], num_samples=2).set_random_state(seed=5)
    for _ in range(4):
        assert [int(o["label"]) for o in a(_entry(words))] == [int(o["label"]) for o in b(_entry(words))]


def test_a_grid_other_than_the_discovery_one_is_refused() -> None:
    t = RandVisualWordCropd("image", roi_size=[4, 4, 4])
    entry = _entry([{"label": 0, "center": [5, 5, 5], "size": [4, 4, 4]}])
    entry["shape"] = [20, 24, 17]
    with pytest.raises(ValueError, match=r"vol.nii.gz.*\[20, 24, 17\].*\[20, 24, 16\].*discover_visual_words"):
        t(entry)


def test_labels_outside_the_head_are_refused() -> None:
    t = RandVisualWordCropd("image", roi_size=[4, 4, 4], num_classes=2)
    with pytest.raises(ValueError, match="label 2 is outside"):
        t(_entry([{"label": 2, "center": [5, 5, 5], "size": [4, 4, 4]}]))


def test_volumes_without_words_need_class_centres() -> None:
    entry = {"image": _volume(), "label": "labels/vol.nii.gz"}  # a labelled datastore entry (MONAI Label)
    with pytest.raises(KeyError, match="visual_words"):
        RandVisualWordCropd("image", roi_size=[4, 4, 4])(entry)
    centres = [[0.0, 0.5, 1.0], [1.0, 1.0, 0.5]]
    t = RandVisualWordCropd("image", roi_size=[4, 4, 4], num_samples=2, class_centres=centres)
    out = t(entry)
    by_label = {int(o["label"]): o["image"] for o in out}  # the segmentation label path is replaced by the class
    assert set(by_label) == {0, 1}
    assert torch.equal(by_label[0], crop_box(entry["image"], [0, 12, 15], [4, 4, 4]))  # round(r * (S - 1))
    assert torch.equal(by_label[1], crop_box(entry["image"], [19, 23, 8], [4, 4, 4]))
