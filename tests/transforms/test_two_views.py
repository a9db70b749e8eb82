"""Crop pairs: the overlap guarantee, the crops are the boxes' voxels, clean targets, reproducibility, errors."""

from __future__ import annotations

import pytest
import torch
from monai.transforms import Compose, RandAxisFlipd, RandGaussianNoised

from common.transforms import RandCropPaird, box_iou


def _volume(shape=(1, 40, 36, 30)) -> torch.Tensor:
    return torch.arange(int(torch.tensor(shape).prod()), dtype=torch.float32).reshape(shape)


def test_box_iou_by_hand() -> None:
    assert box_iou(((0, 4), (0, 4)), ((0, 4), (0, 4))) == 1.0
    assert box_iou(((0, 4), (0, 4)), ((2, 4), (0, 4))) == pytest.approx(8 / 24)  # half overlap on one axis
    assert box_iou(((0, 2), (0, 2), (0, 2)), ((2, 2), (0, 2), (0, 2))) == 0.0  # touching, not overlapping
    assert box_iou(((0, 4),), ((1, 2),)) == pytest.approx(2 / 4)  # one inside the other


@pytest.mark.parametrize("min_overlap", [0.0, 0.25, 0.6])
def test_every_pair_reaches_the_minimum_overlap(min_overlap: float) -> None:
    transform = RandCropPaird(roi_size=(16, 16, 16), num_samples=20, scale_range=(0.5, 1.5), min_overlap=min_overlap)
    transform.set_random_state(seed=0)
    ious = []
    for _ in range(5):
        transform({"image": _volume()})
        ious += [box_iou(a, b) for a, b in transform.boxes]
    assert len(ious) == 100 and min(ious) >= min_overlap
    if min_overlap == 0.0:
        assert min(ious) < 0.25  # without the constraint some pairs overlap little: the constraint does something


def test_views_are_the_boxes_voxels_and_targets_are_clean_copies() -> None:
    volume = _volume()
    transform = RandCropPaird(roi_size=(16, 12, 8), num_samples=3, scale_range=(1.0, 1.0), min_overlap=0.1)
    transform.set_random_state(seed=3)
    samples = transform({"image": volume, "meta": "kept"})
    assert len(samples) == 3
    for sample, (first, second) in zip(samples, transform.boxes):
        for key, box in (("image", first), ("view2", second)):
            region = volume[(slice(None), *(slice(s, s + n) for s, n in box))]
            assert torch.equal(sample[key], region)  # scale 1: an exact crop, no resampling
        assert torch.equal(sample["target"], sample["image"]) and torch.equal(sample["target2"], sample["view2"])
        assert sample["target"].data_ptr() != sample["image"].data_ptr()  # a copy: distorting image keeps it clean
        assert sample["meta"] == "kept"


def test_rescaled_crops_are_resized_to_the_roi_and_follow_the_volume() -> None:
    volume = torch.linspace(0, 1, 40)[:, None, None].expand(40, 36, 30)[None].clone()  # a ramp along axis 0
    transform = RandCropPaird(roi_size=(16, 16, 16), num_samples=4, scale_range=(0.6, 1.8), min_overlap=0.0)
    transform.set_random_state(seed=1)
    for sample, (first, _) in zip(transform({"image": volume}), transform.boxes):
        assert sample["image"].shape == sample["view2"].shape == (1, 16, 16, 16)
        start, size = first[0]
        assert sample["image"].min() >= volume[0, start].min() - 1e-6  # the view covers its box's range of the ramp
        assert sample["image"].max() <= volume[0, start + size - 1].max() + 1e-6


def test_seeded_calls_repeat_and_later_augmentations_leave_targets_clean() -> None:
    pipeline = Compose(
        [
            RandCropPaird(roi_size=(8, 8, 8), num_samples=2, scale_range=(0.75, 1.25)),
            RandAxisFlipd(keys=["image", "target"], prob=1.0),
            RandGaussianNoised(keys="image", prob=1.0, std=0.5, sample_std=False),
        ]
    )
    volume = torch.rand(1, 20, 20, 20)
    a = pipeline.set_random_state(seed=5)({"image": volume})
    b = pipeline.set_random_state(seed=5)({"image": volume})
    assert all(torch.equal(x["image"], y["image"]) and torch.equal(x["view2"], y["view2"]) for x, y in zip(a, b))
    for sample in a:  # the flip reached the target too, the noise did not
        noise = sample["image"] - sample["target"]
        assert noise.abs().max() > 0.1 and float(noise.std()) == pytest.approx(0.5, rel=0.1)


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        RandCropPaird(view_key="image")
    with pytest.raises(ValueError):
        RandCropPaird(target_key="view2")
    with pytest.raises(ValueError):
        RandCropPaird(min_overlap=1.5)
    with pytest.raises(ValueError):
        RandCropPaird(scale_range=(1.5, 0.5))
    with pytest.raises(ValueError, match="channel-first"):
        RandCropPaird(roi_size=(8, 8, 8))({"image": torch.zeros(8, 8, 8)})
