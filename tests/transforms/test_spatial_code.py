"""PCRL's spatial codes: the 7-vector layout, applying codes equals numpy flips and turns, seeded draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.transforms import RandSpatialCoded, apply_spatial_code, identity_code, spatial_code


def test_code_layout() -> None:
    assert spatial_code([True, False, True], 2).tolist() == [1, 0, 1, 0, 0, 1, 0]
    assert identity_code(2).tolist() == [[0, 0, 0, 1, 0, 0, 0]] * 2
    with pytest.raises(ValueError):
        spatial_code([True, False], 0)
    with pytest.raises(ValueError):
        spatial_code([True, False, False], 4)


@pytest.mark.parametrize("flips,turns", [([False] * 3, 0), ([True, False, False], 0), ([False, True, True], 1), ([True, True, True], 3)])
def test_apply_matches_numpy_flips_then_turns(flips: list[bool], turns: int) -> None:
    image = torch.randn(1, 2, 6, 6, 4)
    out = apply_spatial_code(image, spatial_code(flips, turns)[None])
    expected = image[0].numpy()
    for axis, bit in enumerate(flips):
        if bit:
            expected = np.flip(expected, axis=axis + 1)
    expected = np.rot90(expected, k=turns, axes=(1, 2))
    assert torch.equal(out[0], torch.from_numpy(expected.copy()))


def test_each_sample_gets_its_own_code_and_the_identity_changes_nothing() -> None:
    images = torch.randn(3, 1, 4, 4, 2)
    codes = torch.stack([spatial_code([False] * 3, 0), spatial_code([True, False, False], 0), spatial_code([False] * 3, 2)])
    out = apply_spatial_code(images, codes)
    assert torch.equal(out[0], images[0])
    assert torch.equal(out[1], images[1].flip(1))
    assert torch.equal(out[2], images[2].flip(1).flip(2))  # a half-turn is a flip of both plane axes
    assert torch.equal(apply_spatial_code(images, identity_code(3)), images)


def test_odd_turns_need_a_square_plane_and_codes_must_be_valid() -> None:
    with pytest.raises(ValueError, match="equal"):
        apply_spatial_code(torch.zeros(1, 1, 4, 6, 2), spatial_code([False] * 3, 1)[None])
    apply_spatial_code(torch.zeros(1, 1, 4, 6, 2), spatial_code([True] * 3, 2)[None])  # even turns keep the shape
    with pytest.raises(ValueError, match="one-hot"):
        apply_spatial_code(torch.zeros(1, 1, 4, 4, 2), torch.zeros(1, 7))


def test_random_codes_are_seeded_and_cover_every_transform() -> None:
    draw = RandSpatialCoded(keys=["aug", "aug2"])
    draw.set_random_state(seed=0)
    first = [draw({"image": 0}) for _ in range(200)]
    draw.set_random_state(seed=0)
    again = [draw({"image": 0}) for _ in range(200)]
    assert all(torch.equal(a["aug"], b["aug"]) and torch.equal(a["aug2"], b["aug2"]) for a, b in zip(first, again))
    codes = torch.stack([d["aug"] for d in first] + [d["aug2"] for d in first])
    assert codes[:, 3:].sum(dim=1).eq(1).all()  # one quarter-turn each
    assert (codes[:, 3:].mean(dim=0) > 0.15).all()  # every turn drawn (1/4 each)
    assert ((codes[:, :3].mean(dim=0) - 0.5).abs() < 0.1).all()  # flips with probability 1/2
    assert not torch.equal(codes[:200], codes[200:])  # the two views' codes are independent
    flat = RandSpatialCoded(keys="aug", quarter_turns=False, flip_prob=0.0)
    assert torch.equal(flat({})["aug"], identity_code(1)[0])
