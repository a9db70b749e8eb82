"""TransVW's stage recipes: light stage-1 augmentation, always elastic + one of four later; the target stays clean."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.transforms import RandTransVWCorruptiond, RandVisualWordCropd, crop_box

SMALL = {"box_range": (6, 8), "nonlinear_samples": 2000, "sigma": 2.0, "alpha": 40.0}  # fits 16^3 images


def _counts(transform: RandTransVWCorruptiond, n: int) -> dict[str, int]:
    """How often each recipe is drawn (the draws alone: applying them is tested below)."""
    counts: dict[str, int] = {}
    for _ in range(n):
        transform.randomize()
        key = "+".join(transform.applied) or "none"
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_restorative_stages_always_deform_then_apply_one_of_four() -> None:
    t = RandTransVWCorruptiond(restorative=True, **SMALL)
    t.set_random_state(seed=0)
    n = 2000
    counts = _counts(t, n)
    assert set(counts) == {f"elastic+{c}" for c in ("local_shuffle", "nonlinear", "inpaint", "outpaint")}
    tolerance = 5 * np.sqrt(0.25 * 0.75 / n)  # five binomial standard deviations
    assert all(abs(c / n - 0.25) < tolerance for c in counts.values()), counts


def test_stage1_augments_a_third_of_the_crops_with_one_of_four() -> None:
    t = RandTransVWCorruptiond(restorative=False, **SMALL)
    t.set_random_state(seed=0)
    n = 3000
    counts = _counts(t, n)
    assert set(counts) <= {"none", "elastic", "nonlinear", "inpaint", "outpaint"}
    tolerance = 5 * np.sqrt(1 / 3 * 2 / 3 / n)
    assert abs(1 - counts["none"] / n - 1 / 3) < tolerance
    each = 5 * np.sqrt(1 / 12 * 11 / 12 / n)
    assert all(abs(counts[c] / n - 1 / 12) < each for c in ("elastic", "nonlinear", "inpaint", "outpaint")), counts


def test_stage1_leaves_the_others_unchanged_and_the_target_is_always_the_clean_crop() -> None:
    t = RandTransVWCorruptiond(restorative=False, **SMALL)
    t.set_random_state(seed=1)
    img = torch.rand(1, 16, 16, 16)
    seen = set()
    for _ in range(40):
        out = t({"image": img})
        assert torch.equal(out["target"], img)
        seen.add(bool(t.applied))
        if not t.applied:
            assert torch.equal(out["image"], img)
        else:
            assert not torch.equal(out["image"], img)
    assert seen == {True, False}
    assert img.equal(img.clone())  # nothing was written into the input


def test_a_present_target_is_left_as_it_is() -> None:
    img, target = torch.rand(1, 16, 16, 16), torch.zeros(1, 16, 16, 16)
    out = RandTransVWCorruptiond(**SMALL)({"image": img, "target": target})
    assert out["target"] is target and not torch.equal(out["image"], img)


def test_the_restoration_target_is_the_clean_visual_word_crop() -> None:
    """Crop a word, deform and corrupt it: the decoder's target is the crop itself, not the network input."""
    volume = torch.rand(1, 48, 48, 40)
    word = {"label": 2, "center": [20, 25, 18], "size": [32, 32, 32]}
    entry = {"image": volume, "visual_words": [word], "shape": [48, 48, 40]}
    crop = RandVisualWordCropd("image", roi_size=[32, 32, 32], num_samples=3).set_random_state(seed=0)
    corrupt = RandTransVWCorruptiond(restorative=True).set_random_state(seed=0)  # the paper's alpha, sigma, boxes
    clean = crop_box(volume, word["center"], word["size"])
    for sample in crop(entry):
        out = corrupt(sample)
        assert torch.equal(out["target"], clean)
        assert corrupt.applied[0] == "elastic"
        assert (out["image"] - clean).abs().mean() > 1e-3  # the input was deformed and corrupted
        assert int(out["label"]) == 2


def test_seeds_reproduce_the_recipe() -> None:
    img = torch.rand(1, 16, 16, 16)
    a = RandTransVWCorruptiond(**SMALL).set_random_state(seed=7)
    b = RandTransVWCorruptiond(**SMALL).set_random_state(seed=7)
    for _ in range(5):
        assert torch.equal(a({"image": img})["image"], b({"image": img})["image"]) and a.applied == b.applied


def test_the_target_key_must_stay_out_of_the_keys() -> None:
    with pytest.raises(ValueError, match="target_key"):
        RandTransVWCorruptiond(keys=["image", "target"])
