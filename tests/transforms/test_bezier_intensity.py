"""The Bezier intensity map: monotone (or inverted), [0, 1] into [0, 1], the Genesis pairing, np.interp semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from common.transforms import RandBezierIntensityd, bezier_curve, bezier_lookup, interp


def _genesis_style_map(x: np.ndarray, inner: tuple[float, ...], inverted: bool, n: int = 100_000) -> np.ndarray:
    """Independent statement of the reference: the curve sampled with the parameter running from the last
    control point to the first; x values sorted; y values sorted too, unless inverted."""
    points = np.array([[0.0, 0.0], [inner[0], inner[1]], [inner[2], inner[3]], [1.0, 1.0]])
    s = np.linspace(0.0, 1.0, n)  # s = 1 - t
    weights = np.stack([math.comb(3, i) * (1 - s) ** i * s ** (3 - i) for i in range(4)])
    xs, ys = points[:, 0] @ weights, points[:, 1] @ weights
    return np.interp(x, np.sort(xs), ys if inverted else np.sort(ys))


def test_bezier_curve_end_points_and_monotone_coordinates() -> None:
    rng = np.random.RandomState(0)
    for _ in range(50):
        inner = rng.rand(2, 2)
        xs, ys = bezier_curve(np.vstack([[0, 0], inner, [1, 1]]), 1001)
        assert (xs[0], ys[0], xs[-1], ys[-1]) == pytest.approx((0, 0, 1, 1))
        assert np.all(np.diff(xs) >= -1e-12) and np.all(np.diff(ys) >= -1e-12)
    # the midpoint of a cubic curve is (P0 + 3 P1 + 3 P2 + P3) / 8
    xs, ys = bezier_curve(np.array([[0, 0], [0.2, 0.9], [0.6, 0.1], [1, 1]]), 3)
    assert (xs[1], ys[1]) == pytest.approx(((0 + 0.6 + 1.8 + 1) / 8, (0 + 2.7 + 0.3 + 1) / 8))


@pytest.mark.parametrize("inverted", [False, True])
def test_lookup_is_monotone_or_inverted(inverted: bool) -> None:
    xp, fp = bezier_lookup((0.9, 0.05, 0.1, 0.95), inverted)
    assert xp[0] == 0 and xp[-1] == 1 and np.all(np.diff(xp) >= 0)
    assert fp.min() >= 0 and fp.max() <= 1
    if inverted:
        assert fp[0] == pytest.approx(1) and fp[-1] == pytest.approx(0) and np.all(np.diff(fp) <= 0)
    else:
        assert fp[0] == pytest.approx(0) and fp[-1] == pytest.approx(1) and np.all(np.diff(fp) >= 0)


def test_interp_matches_numpy_inside_and_outside_the_table() -> None:
    rng = np.random.RandomState(1)
    xp, fp = bezier_lookup(tuple(rng.rand(4)), inverted=True, num_samples=5000)
    x = np.concatenate([rng.uniform(-0.5, 1.5, 5000), [0.0, 1.0, xp[17], xp[4000]]])
    ours = interp(torch.from_numpy(x), torch.from_numpy(xp), torch.from_numpy(fp)).numpy()
    np.testing.assert_allclose(ours, np.interp(x, xp, fp), atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_transform_is_the_genesis_map(seed: int) -> None:
    transform = RandBezierIntensityd("image")
    transform.set_random_state(seed=seed)
    img = torch.rand(1, 16, 16, 8, generator=torch.Generator().manual_seed(seed))
    out = transform({"image": img})["image"]
    expected = _genesis_style_map(img.double().numpy(), transform.inner_points, transform.inverted)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)
    assert out.dtype == img.dtype


def test_map_is_monotone_or_anti_monotone_and_stays_in_unit_range() -> None:
    transform = RandBezierIntensityd("image")
    transform.set_random_state(seed=0)
    ramp = torch.linspace(0, 1, 4096).reshape(1, 64, 64)  # sorted intensities, 0 and 1 included
    seen = set()
    for _ in range(20):
        out = transform({"image": ramp})["image"].flatten()
        seen.add(transform.inverted)
        assert out.min() >= 0 and out.max() <= 1
        steps = torch.diff(out)
        if transform.inverted:
            assert steps.max() <= 1e-6 and out[0] == pytest.approx(1) and out[-1] == pytest.approx(0)
        else:
            assert steps.min() >= -1e-6 and out[0] == pytest.approx(0) and out[-1] == pytest.approx(1)
        assert not torch.allclose(out, ramp.flatten(), atol=1e-3)  # not the identity
        assert not torch.allclose(out, 1 - ramp.flatten(), atol=1e-3)  # nor a plain inversion
    assert seen == {False, True}  # both orientations occur


def test_value_range_maps_to_unit_and_back() -> None:
    transform = RandBezierIntensityd("image", value_range=(-1.0, 3.0))
    transform.set_random_state(seed=2)
    img = torch.rand(1, 8, 8, 8, dtype=torch.float64) * 4 - 1
    out = transform({"image": img})["image"]
    unit = _genesis_style_map(((img + 1) / 4).numpy(), transform.inner_points, transform.inverted)
    np.testing.assert_allclose(out.numpy(), unit * 4 - 1, atol=1e-9)
    # outside the range is clamped to the range's end values, as np.interp clamps in the reference
    clamped = transform({"image": torch.tensor([[[-5.0, 9.0]]], dtype=torch.float64)})["image"]
    assert clamped.min() >= -1 and clamped.max() <= 3


def test_per_channel_range_for_mri_like_data() -> None:
    transform = RandBezierIntensityd("image", value_range=None)
    transform.set_random_state(seed=3)
    img = torch.stack([torch.randn(12, 12, 6) * 2, torch.rand(12, 12, 6) + 10, torch.full((12, 12, 6), 4.0)])
    out = transform({"image": img})["image"]
    for c in range(2):  # the curve's end points map a channel's min and max onto its min and max
        assert out[c].min() == pytest.approx(float(img[c].min()), abs=1e-5)
        assert out[c].max() == pytest.approx(float(img[c].max()), abs=1e-5)
    assert torch.equal(out[2], img[2])  # a constant channel is left as it is
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"value_range": (1.0, 0.0)}, "low <= high"),
        ({"value_range": (1.0, 1.0)}, "low < high"),
        ({"value_range": 1.0}, "pair"),
        ({"invert_prob": -0.1}, "invert_prob"),
        ({"num_samples": 1}, "num_samples"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RandBezierIntensityd("image", **kwargs)
