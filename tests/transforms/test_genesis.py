"""The Genesis composite: paper rates, flips on input and target alike, a clean target, seeds, configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from monai.bundle import ConfigParser
from monai.transforms import Compose, OneOf

from common.transforms import (
    RandBezierIntensityd,
    RandElasticDeformd,
    RandGenesisCorruptiond,
    RandInPaintd,
    RandLocalPixelShuffled,
    RandOutPaintd,
)

FAST = {"nonlinear": {"num_samples": 2000}, "local_shuffle": {"num_blocks": 200}}


def _flipped(img: torch.Tensor, axes: list[int]) -> torch.Tensor:
    for axis in axes:
        img = torch.flip(img, dims=[axis + 1])
    return img


def test_defaults_are_the_models_genesis_rates() -> None:
    t = RandGenesisCorruptiond()
    assert (t.flip_rate, t.max_flips, t.paint_rate, t.inpaint_rate) == (0.4, 3, 0.9, 0.2)
    assert (t.local_shuffle.prob, t.nonlinear.prob) == (0.5, 0.9)
    assert t.local_shuffle.num_blocks == 10_000 and t.nonlinear.value_range == (0.0, 1.0)
    assert t.inpaint.max_boxes == 5 and t.outpaint.max_boxes == 5 and t.inpaint.fill_range == (0.0, 1.0)


def test_observed_rates_match_the_configuration() -> None:
    transform = RandGenesisCorruptiond(**FAST)
    transform.set_random_state(seed=0)
    img = torch.rand(1, 16, 16)  # small and 2D: this test is about the rates, not the corruptions
    n, counts = 500, {"flip": 0, "local_shuffle": 0, "nonlinear": 0, "inpaint": 0, "outpaint": 0}
    for _ in range(n):
        transform({"image": img})
        for name in transform.applied:
            counts[name] += 1
    tolerance = 5 * 0.5 / np.sqrt(n)  # five binomial standard deviations at worst
    assert abs(counts["flip"] / n - 0.4) < tolerance
    assert abs(counts["local_shuffle"] / n - 0.5) < tolerance
    assert abs(counts["nonlinear"] / n - 0.9) < tolerance
    assert abs((counts["inpaint"] + counts["outpaint"]) / n - 0.9) < tolerance
    assert abs(counts["inpaint"] / (counts["inpaint"] + counts["outpaint"]) - 0.2) < 2 * tolerance


def test_flip_chain_lengths_and_axes() -> None:
    transform = RandGenesisCorruptiond()
    transform.set_random_state(seed=0)
    lengths, axes = [], []
    for _ in range(3000):
        transform.randomize(3)
        lengths.append(len(transform.flips))
        axes += transform.flips
    lengths = np.bincount(lengths, minlength=4) / 3000
    expected = [0.6, 0.4 * 0.6, 0.4**2 * 0.6, 0.4**3]  # continue with 0.4, at most 3 flips
    assert np.allclose(lengths, expected, atol=0.03)
    assert set(axes) == {0, 1, 2}  # every spatial axis, depth included, and never the channel axis


@pytest.mark.parametrize("shape", [(1, 16, 16, 8), (2, 24, 20)])
def test_flips_act_on_image_and_target_alike(shape: tuple[int, ...]) -> None:
    transform = RandGenesisCorruptiond(flip_rate=1.0, local_rate=0.0, nonlinear_rate=0.0, paint_rate=0.0)
    transform.set_random_state(seed=1)
    img = torch.rand(*shape)
    chains = set()
    for _ in range(10):
        out = transform({"image": img})
        assert len(transform.flips) == 3 and transform.applied == ["flip"]
        chains.add(tuple(transform.flips))
        assert torch.equal(out["image"], out["target"])
        assert torch.equal(out["target"], _flipped(img, transform.flips))
    assert len(chains) > 1


def test_the_target_is_the_flipped_clean_image_and_never_corrupted() -> None:
    transform = RandGenesisCorruptiond(flip_rate=0.7, paint_rate=1.0, **FAST)
    transform.set_random_state(seed=2)
    img = torch.rand(1, 24, 24, 16)
    img_copy = img.clone()
    given_target = torch.rand(1, 24, 24, 16)
    given_copy = given_target.clone()
    for _ in range(10):
        out = transform({"image": img})
        assert torch.equal(out["target"], _flipped(img, transform.flips))  # bitwise
        assert not torch.equal(out["image"], out["target"])
        out = transform({"image": img, "target": given_target})
        assert torch.equal(out["target"], _flipped(given_target, transform.flips))  # an existing target: flipped only
        assert torch.equal(given_target, given_copy)
    assert torch.equal(img, img_copy)  # the input is never written in place


def test_each_step_is_the_corresponding_transform() -> None:
    """With only out-painting on, the composite's output keeps exactly the out-painting boxes of the input."""
    transform = RandGenesisCorruptiond(
        flip_rate=0.0, local_rate=0.0, nonlinear_rate=0.0, paint_rate=1.0, inpaint_rate=0.0
    )
    img = torch.rand(1, 32, 32, 16) + 2.0
    out = transform({"image": img})["image"]
    kept = torch.zeros(32, 32, 16, dtype=torch.bool)
    for box in transform.outpaint.boxes:
        kept[box] = True
    assert transform.applied == ["outpaint"]
    assert torch.equal((out == img)[0], kept) and out[0][~kept].max() <= 1


def test_seed_reproduces_the_chain() -> None:
    img = torch.rand(1, 20, 20, 14)
    runs = []
    for seed in (7, 7, 8):
        transform = RandGenesisCorruptiond(**FAST)
        transform.set_random_state(seed=seed)
        runs.append([(transform({"image": img})["image"], list(transform.applied)) for _ in range(6)])
    assert all(torch.equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(runs[0], runs[1]))
    assert not all(torch.equal(a[0], c[0]) for a, c in zip(runs[0], runs[2]))
    # seeded through a MONAI Compose, as in a bundle
    outs = []
    for _ in range(2):
        pipeline = Compose([RandGenesisCorruptiond(**FAST)]).set_random_state(seed=3)
        outs.append([pipeline({"image": img})["image"] for _ in range(3)])
    assert all(torch.equal(a, b) for a, b in zip(*outs))


def test_built_from_a_yaml_config() -> None:
    config = yaml.safe_load(
        """
        corrupt:
          _target_: common.transforms.RandGenesisCorruptiond
          keys: image
          flip_rate: 0.4
          local_rate: 0.5
          nonlinear_rate: 0.9
          paint_rate: 0.9
          inpaint_rate: 0.2
          value_range: [0.0, 1.0]
          local_shuffle: {num_blocks: 100}
          inpaint: {max_boxes: 1, size_range: [4, 8], fill: constant}
          outpaint: {max_boxes: 1, shrink_range: [8, 12], fill: constant}
        """
    )
    parser = ConfigParser(config)
    transform = parser.get_parsed_content("corrupt")
    assert transform.local_shuffle.num_blocks == 100 and transform.inpaint.size_range == (4, 8)
    out = transform({"image": torch.rand(1, 24, 24, 16)})
    assert out["image"].shape == out["target"].shape == (1, 24, 24, 16)


def test_mri_like_value_range_none() -> None:
    transform = RandGenesisCorruptiond(value_range=None, paint_rate=1.0, **FAST)
    transform.set_random_state(seed=4)
    img = torch.randn(1, 24, 24, 16)
    for _ in range(5):
        out = transform({"image": img})
        assert torch.isfinite(out["image"]).all()
        assert out["image"].min() >= img.min() - 1e-6 and out["image"].max() <= img.max() + 1e-6


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"flip_rate": 1.5}, "flip_rate"),
        ({"local_rate": -0.1}, "local_rate"),
        ({"inpaint_rate": 2}, "inpaint_rate"),
        ({"max_flips": -1}, "max_flips"),
        ({"keys": ["image", "target"]}, "uncorrupted"),
        ({"local_shuffle": {"prob": 0.3}}, r"local_shuffle must not set \['prob'\]"),
        ({"inpaint": {"fill": "gaussian"}}, "fill must be one of"),
        ({"value_range": [0.0]}, "value_range"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RandGenesisCorruptiond(**kwargs)


def test_a_target_of_another_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="flips must act on both alike"):
        RandGenesisCorruptiond()({"image": torch.rand(1, 16, 16, 8), "target": torch.rand(1, 16, 16, 16)})


def test_the_documented_transvw_pipeline_restores_the_undeformed_patch() -> None:
    """Elastic always, then one of four corruptions (stepwise TransVW), composed with MONAI's Compose/OneOf:
    the first transform writes the target before deforming, so the target is the clean patch."""
    pipeline = Compose(
        [
            RandElasticDeformd("image"),
            OneOf(
                [
                    RandLocalPixelShuffled("image", num_blocks=100),
                    RandBezierIntensityd("image"),
                    RandInPaintd("image", max_boxes=1, size_range=(10, 20), fill="constant"),
                    RandOutPaintd("image", max_boxes=1, shrink_range=(10, 20), fill="constant"),
                ]
            ),
        ]
    ).set_random_state(seed=0)
    img = torch.rand(1, 64, 64, 32)
    for _ in range(4):
        out = pipeline({"image": img})
        assert torch.equal(out["target"], img) and not torch.equal(out["image"], img)
