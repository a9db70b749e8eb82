"""Where visual words lie: relative coordinates, boxes inside every instance volume, distinct classes, body crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.transforms.visual_words import box_start, crop_box
from common.visual_words.sampling import (
    background_fraction,
    clamp_center,
    multi_resolution_boxes,
    relative_to_voxel,
    sample_class_centre,
    valid_relative_range,
)


def _inside(center, size, shape) -> bool:
    start = box_start(center, size)
    return all(0 <= s and s + e <= d for s, e, d in zip(start, size, shape))


def test_relative_to_voxel_maps_the_extent_ends_and_scales_with_the_grid() -> None:
    assert relative_to_voxel([0.0, 1.0, 0.5], [10, 20, 41]) == [0, 19, 20]
    # the same relative place in a grid twice as large (a bigger body box) is twice as far from the start
    assert relative_to_voxel([0.25, 0.25, 0.25], [41, 81, 161]) == [10, 20, 40]


def test_valid_range_is_the_smallest_grids_hand_computed() -> None:
    # roi 8: a grid of 20 allows centres 4..16 -> [4/19, 16/19]; a grid of 40 allows [4/39, 36/39]; the intersection
    # is the smaller grid's range
    ranges = valid_relative_range([[20, 40], [40, 8]], [8, 8])
    np.testing.assert_allclose(ranges[0], [4 / 19, 16 / 19])
    np.testing.assert_allclose(ranges[1], [4 / 7, 4 / 7])  # axis 1: a grid of 8 holds one box, centred at 4 -> 4/7
    with pytest.raises(ValueError, match="smaller than roi_size"):
        valid_relative_range([[6, 40]], [8, 8])


def test_every_draw_in_the_valid_range_fits_every_grid() -> None:
    shapes, roi = [[37, 53, 32], [64, 40, 45], [32, 90, 33]], [32, 16, 32]
    ranges = valid_relative_range(shapes, roi)
    rng = np.random.RandomState(0)
    for _ in range(300):
        r = rng.uniform(ranges[:, 0], ranges[:, 1])
        for shape in shapes:
            assert _inside(relative_to_voxel(r, shape), roi, shape), (r, shape)


def test_clamp_center_moves_boxes_inside_and_centres_oversized_ones() -> None:
    assert clamp_center([0, 30], [8, 8], [32, 32]) == [4, 28]
    assert _inside(clamp_center([0, 30], [8, 8], [32, 32]), [8, 8], [32, 32])
    assert clamp_center([10, 10], [8, 40], [32, 32]) == [10, 16]  # too large: centred, cropped with padding


def test_multi_resolution_boxes_rescale_and_shift_in_plane_only() -> None:
    rng = np.random.RandomState(1)
    shape, roi, center = [100, 100, 40], [32, 32, 16], [50, 50, 20]
    boxes = multi_resolution_boxes(rng, center, shape, roi, num_scales=40, scale_range=(0.75, 1.25), jitter=0.25)
    assert boxes[0] == ([50, 50, 20], [32, 32, 16])  # the base crop first, at the word's centre
    sizes = np.array([size for _, size in boxes[1:]])
    centers = np.array([c for c, _ in boxes[1:]])
    assert sizes[:, 0].min() >= 24 and sizes[:, 0].max() <= 40 and len(set(sizes[:, 0])) > 5
    assert (sizes[:, 0] == sizes[:, 1]).all() and (sizes[:, 2] == 16).all()  # one in-plane scale, depth kept
    assert (np.abs(centers[:, :2] - 50) <= 8).all() and (centers[:, 2] == 20).all()  # shift <= 0.25 * 32, in-plane
    assert len({tuple(c) for c in centers}) > 5


def test_sampled_centres_keep_their_distance_and_stay_in_the_body() -> None:
    # a reference whose half x < 20 is air (0) and the rest body (1); background threshold 0.25
    reference = np.zeros((1, 40, 40, 40), dtype=np.float32)
    reference[:, 20:] = 1.0
    roi, rng = [8, 8, 8], np.random.RandomState(0)
    centres: list[list[float]] = []
    for _ in range(12):
        r = sample_class_centre(rng, reference, [[40, 40, 40]], roi, centres, 6.0, 0.1, 0.25)
        assert r is not None
        centres.append(r)
    voxels = np.array([relative_to_voxel(r, [40, 40, 40]) for r in centres], dtype=float)
    distances = np.linalg.norm(voxels[:, None] - voxels[None], axis=2) + np.eye(len(voxels)) * 1e9
    assert distances.min() >= 6.0 - 1.0  # the distance is checked before rounding to voxels
    for r in centres:  # every accepted crop is at most 10 % air
        crop = crop_box(torch.from_numpy(reference), relative_to_voxel(r, [40, 40, 40]), roi).numpy()
        assert background_fraction(crop, 0.25) <= 0.1


def test_a_full_reference_gives_up_with_none() -> None:
    reference = np.zeros((1, 16, 16, 16), dtype=np.float32)  # all air
    rng = np.random.RandomState(0)
    assert sample_class_centre(rng, reference, [[16, 16, 16]], [8, 8, 8], [], 1.0, 0.5, 0.25, max_tries=20) is None
