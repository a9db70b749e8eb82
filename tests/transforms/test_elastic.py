"""Elastic deformation: scipy's (alpha, sigma) convention, scipy's resampling, in-plane only by default."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter, map_coordinates

from common.transforms import RandElasticDeformd, elastic_displacement, warp


def _scipy_warp(img: np.ndarray, displacement: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    grid = np.meshgrid(*[np.arange(s) for s in img.shape], indexing="ij")
    coords = [g.astype(np.float64) for g in grid]
    for i, axis in enumerate(axes):
        coords[axis] = coords[axis] + displacement[i]
    return map_coordinates(img, coords, order=1, mode="reflect")


@pytest.mark.parametrize("shape,sigma", [((2, 40, 36, 20), 8.0), ((1, 50, 30), 3.5)])
def test_displacement_is_alpha_times_scipy_gaussian_filter(shape: tuple[int, ...], sigma: float) -> None:
    noise = np.random.RandomState(0).uniform(-1, 1, shape)
    expected = np.stack([gaussian_filter(n, sigma, mode="constant", cval=0.0) for n in noise]) * 991.0
    ours = elastic_displacement(torch.from_numpy(noise), sigma, 991.0).numpy()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=5e-5)  # float32 kernel; the field is ~20 voxels


@pytest.mark.parametrize("spatial,axes", [((24, 20, 12), (0, 1)), ((24, 20, 12), (0, 1, 2)), ((30, 26), (0, 1))])
def test_warp_matches_scipy_map_coordinates_with_reflection(spatial: tuple[int, ...], axes: tuple[int, ...]) -> None:
    rng = np.random.RandomState(1)
    img = rng.rand(*spatial)
    displacement = rng.uniform(-15, 15, (len(axes), *spatial))  # far past the borders: exercises the reflection
    ours = warp(torch.from_numpy(img)[None], torch.from_numpy(displacement), axes)[0].numpy()
    np.testing.assert_allclose(ours, _scipy_warp(img, displacement, axes), atol=1e-10)


def test_warp_samples_at_x_plus_d() -> None:
    img = torch.arange(4 * 5 * 3, dtype=torch.float32).reshape(1, 4, 5, 3)
    shift = torch.zeros(2, 4, 5, 3)
    shift[0] = 1.0  # d = +1 along axis 0: out[i] = img[i + 1]
    out = warp(img, shift, (0, 1))
    assert torch.allclose(out[:, :3], img[:, 1:], atol=1e-5)
    assert torch.allclose(out[:, 3], img[:, 3], atol=1e-5)  # past the border: reflected about the edge
    assert torch.allclose(warp(img, torch.zeros(2, 4, 5, 3), (0, 1)), img, atol=1e-5)  # no displacement: identity


def test_transform_matches_scipy_on_its_own_field() -> None:
    transform = RandElasticDeformd("image")
    transform.set_random_state(seed=0)
    img = torch.rand(1, 32, 32, 16, dtype=torch.float64)
    out = transform({"image": img})["image"]
    assert transform.axes == (0, 1) and transform.displacement.shape == (2, 32, 32, 16)
    expected = _scipy_warp(img[0].numpy(), transform.displacement.double().numpy(), (0, 1))
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-10)


def test_in_plane_deformation_never_moves_along_depth() -> None:
    transform = RandElasticDeformd("image")  # TransVW: alpha 991, sigma 8, axes (0, 1)
    transform.set_random_state(seed=1)
    depth_profile = torch.linspace(0, 1, 16).reshape(1, 1, 1, 16).expand(1, 32, 32, 16).contiguous()
    assert torch.allclose(transform({"image": depth_profile})["image"], depth_profile, atol=1e-6)
    row_profile = torch.linspace(0, 1, 32).reshape(1, 32, 1, 1).expand(1, 32, 32, 16).contiguous()
    assert (transform({"image": row_profile})["image"] - row_profile).abs().max() > 0.05
    every_axis = RandElasticDeformd("image", spatial_axes=None)
    assert (every_axis({"image": depth_profile})["image"] - depth_profile).abs().max() > 0.05


def test_transvw_magnitude_is_a_few_voxels() -> None:
    """The docstring's mapping: at sigma 8 the smoothed noise has std 0.577 / (2 sqrt(pi) 8)^1.5, times 991."""
    transform = RandElasticDeformd("image", spatial_axes=(0, 1))
    transform.set_random_state(seed=2)
    transform({"image": torch.zeros(1, 64, 64, 64)})
    interior = transform.displacement[:, 24:40, 24:40, 24:40]
    expected = 991 * (1 / 3) ** 0.5 / (2 * np.pi**0.5 * 8) ** 1.5
    assert expected == pytest.approx(3.8, abs=0.05)
    assert 0.6 * expected < float(interior.std()) < 1.4 * expected


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"sigma": 0.0}, "sigma"),
        ({"alpha": -1.0}, "alpha"),
        ({"mode": "bicubic"}, "mode"),
        ({"padding_mode": "reflect"}, "padding_mode"),
        ({"spatial_axes": (0, 0)}, "spatial_axes"),
        ({"spatial_axes": (3,)}, "spatial_axes"),
        ({"spatial_axes": ()}, "spatial_axes"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RandElasticDeformd("image", **kwargs)


def test_axes_missing_from_a_2d_image_are_refused() -> None:
    with pytest.raises(ValueError, match=r"spatial_axes \(2,\) do not exist in a 2D image"):
        RandElasticDeformd("image", spatial_axes=(2,))({"image": torch.rand(1, 16, 16)})
