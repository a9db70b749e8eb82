"""The Swin UNETR views: two independently rotated and corrupted copies of one crop, labels and clean targets."""

from __future__ import annotations

import pytest
import torch

from common.transforms import RandSwinViewsd
from common.transforms.swin_views import VIEW_KEYS

SHAPE = (1, 40, 24, 24)  # the quarter-turns are in the plane of the last two (equal) sizes


def _crop(seed: int = 0) -> torch.Tensor:
    return torch.rand(SHAPE, generator=torch.Generator().manual_seed(seed))


def test_labels_are_the_original_quarter_turns_and_targets_are_the_clean_rotated_crop() -> None:
    """Label k is ``torch.rot90(crop, k, dims=(2, 3))`` of the (C, H, W, D) crop, as in the original ``rot_rand``;
    the target is that rotation of the clean crop (the rotation is not undone), the network input its corruption."""
    transform = RandSwinViewsd("image").set_random_state(1)
    crop = _crop()
    seen = set()
    for _ in range(100):
        out = transform({"image": crop})
        for image_key, label_key, target_key in VIEW_KEYS:
            k = int(out[label_key])
            assert out[label_key].dtype == torch.long and out[label_key].ndim == 0
            assert torch.equal(out[target_key], torch.rot90(crop, k, dims=(2, 3)))
            assert out[image_key].shape == crop.shape and not torch.equal(out[image_key], out[target_key])
        seen.add((int(out["label"]), int(out["label2"])))
    assert len(seen) == 16  # the two views are rotated independently: every pair of quarter-turns occurs


def test_without_corruption_the_views_are_the_targets_and_patch_swaps_only_move_voxels() -> None:
    crop = _crop()
    plain = RandSwinViewsd("image", inpaint_prob=0.0, swap_prob=0.0).set_random_state(0)(dict(image=crop))
    assert torch.equal(plain["image"], plain["target"]) and torch.equal(plain["view2"], plain["target2"])
    swapped = RandSwinViewsd("image", inpaint_prob=0.0).set_random_state(0)({"image": crop})
    for image_key, _, target_key in VIEW_KEYS:
        assert not torch.equal(swapped[image_key], swapped[target_key])  # patches moved ...
        assert torch.equal(swapped[image_key].flatten().sort().values, swapped[target_key].flatten().sort().values)


def test_in_painting_boxes_are_at_most_a_quarter_of_each_size_and_filled_with_noise_in_range() -> None:
    transform = RandSwinViewsd("image", swap_prob=0.0).set_random_state(3)
    crop = torch.full(SHAPE, 0.5)
    for _ in range(10):
        out = transform({"image": crop})
        boxes = transform.inpaint.boxes  # those of view 2, the last one painted
        assert 1 <= len(boxes) <= 60
        for box in boxes:
            for edge, size in zip(box, SHAPE[1:]):
                assert 1 <= edge.stop - edge.start <= size // 4
        changed = out["view2"] != 0.5
        painted = torch.zeros(SHAPE, dtype=torch.bool)
        for box in boxes:
            painted[(slice(None), *box)] = True
        assert torch.equal(changed, painted)  # exactly the boxes changed (noise never hits 0.5 exactly)
        assert 0.0 <= float(out["view2"].min()) and float(out["view2"].max()) <= 1.0


def test_the_input_is_not_modified_and_a_seed_reproduces_the_views() -> None:
    crop = _crop()
    before = crop.clone()
    a = RandSwinViewsd("image").set_random_state(7)({"image": crop, "other": 3})
    b = RandSwinViewsd("image").set_random_state(7)({"image": crop, "other": 3})
    assert torch.equal(crop, before) and a["other"] == 3
    assert all(torch.equal(a[k], b[k]) for k in ("image", "label", "target", "view2", "label2", "target2"))
    c = RandSwinViewsd("image").set_random_state(8)({"image": crop})
    assert not torch.equal(a["image"], c["image"])


def test_bad_crops_and_options_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"equal sizes in the rotated plane.*\(24, 24, 32\)"):
        RandSwinViewsd("image")({"image": torch.rand(1, 24, 24, 32)})
    assert RandSwinViewsd("image", quarter_turn_axis=2)({"image": torch.rand(1, 24, 24, 32)})["image"].shape == (1, 24, 24, 32)
    with pytest.raises(ValueError, match="spatial dims"):
        RandSwinViewsd("image")({"image": torch.rand(24, 24, 24)})
    with pytest.raises(ValueError, match="prob"):
        RandSwinViewsd("image", inpaint={"prob": 0.5})
    with pytest.raises(ValueError, match="one key"):
        RandSwinViewsd(["image", "label"])


def test_two_dimensional_crops() -> None:
    crop = torch.rand(1, 32, 32)
    out = RandSwinViewsd("image", spatial_dims=2).set_random_state(0)({"image": crop})
    assert torch.equal(out["target"], torch.rot90(crop, int(out["label"]), dims=(1, 2)))
