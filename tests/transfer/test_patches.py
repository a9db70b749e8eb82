"""Organ patches from label maps: centre classes, deterministic enumeration, and MONAI's random sampler."""

from __future__ import annotations

import pytest
import torch
from monai.transforms import BorderPadd, Compose, RandCropByLabelClassesd

from common.transfer import LabelClassPatchesd, PatchCentreClassd


def _volume() -> dict:
    image = torch.arange(20 * 20 * 20, dtype=torch.float32).reshape(1, 20, 20, 20)
    label = torch.zeros(1, 20, 20, 20)
    label[0, 2:6, 2:6, 2:6] = 1  # class 0: a corner block, touching no border after padding by half a patch
    label[0, 12:19, 10:12, 15:19] = 2  # class 1
    label[0, 19, 19, 19] = 2  # a class-1 voxel in the far corner: its patch needs the padding
    return {"image": image, "label": label}


def test_centre_class_reads_the_centre_voxel() -> None:
    patch = torch.zeros(1, 4, 4, 4)
    patch[0, 2, 2, 2] = 3
    assert PatchCentreClassd("label", num_classes=3)({"label": patch})["label"].item() == 2
    patch[0, 2, 2, 2] = 0
    with pytest.raises(ValueError, match="background"):
        PatchCentreClassd("label", num_classes=3)({"label": patch})


def test_enumeration_is_deterministic_spread_and_centred() -> None:
    pad = BorderPadd(["image", "label"], spatial_border=4)
    enumerate_patches = LabelClassPatchesd("image", "label", spatial_size=8, num_classes=2, max_per_class=5)
    data = pad(_volume())
    first, second = enumerate_patches(data), enumerate_patches(data)
    assert len(first) == 10 and [p["label"].item() for p in first] == [0] * 5 + [1] * 5
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(first, second))
    centres = [tuple(p["patch_centre"].tolist()) for p in first]
    assert centres[0] == (6, 6, 6) and centres[4] == (9, 9, 9)  # first and last voxel of the 4^3 block (+4 padding)
    assert centres[9] == (23, 23, 23)  # the corner voxel is the last class-1 voxel in index order
    padded_image = data["image"]
    for patch, (x, y, z) in zip(first, centres):
        assert patch["image"].shape == (1, 8, 8, 8)
        assert torch.equal(patch["image"], padded_image[:, x - 4 : x + 4, y - 4 : y + 4, z - 4 : z + 4])
        assert data["label"][0, x, y, z].item() == patch["label"].item() + 1


def test_enumeration_without_padding_fails_clearly() -> None:
    with pytest.raises(ValueError, match="BorderPadd"):
        LabelClassPatchesd("image", "label", spatial_size=8, num_classes=2, max_per_class=100)(_volume())


def test_random_sampler_with_padding_always_centres_a_labelled_voxel() -> None:
    sample = Compose(
        [
            BorderPadd(["image", "label"], spatial_border=4),
            RandCropByLabelClassesd(
                ["image", "label"], "label", spatial_size=8, num_classes=3, ratios=[0, 1, 1], num_samples=32, warn=False
            ),
            PatchCentreClassd("label", num_classes=2),
        ]
    ).set_random_state(0)
    classes = [item["label"].item() for item in sample(_volume())]
    assert set(classes) == {0, 1} and 8 <= classes.count(0) <= 24  # balanced sampling between the two classes
