"""Patch swapping: the two patches of a pair never overlap, each swap is an exact exchange, nothing else moves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.transforms import RandPatchSwapd
from common.transforms.patch_swap import boxes_overlap


def _distinct(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    values = np.random.RandomState(seed).permutation(int(np.prod(shape))).astype(np.float32)
    return torch.from_numpy(values.reshape(shape))


def test_boxes_overlap() -> None:
    a = (slice(0, 4), slice(0, 4))
    assert boxes_overlap(a, (slice(3, 6), slice(3, 6)))  # share the voxel (3, 3)
    assert not boxes_overlap(a, (slice(4, 8), slice(0, 4)))  # touching is not overlapping
    assert not boxes_overlap(a, (slice(2, 3), slice(5, 9)))  # separated along one axis only
    assert boxes_overlap((slice(0, 10),) * 3, (slice(2, 3),) * 3)  # contained


@pytest.mark.parametrize("spatial", [(64, 64, 32), (48, 40)])
def test_one_swap_exchanges_two_disjoint_patches(spatial: tuple[int, ...]) -> None:
    transform = RandPatchSwapd("image", num_swaps=1)
    transform.set_random_state(seed=0)
    img = _distinct((2, *spatial))
    for _ in range(5):
        out = transform({"image": img})["image"]
        ((a, b),) = transform.pairs
        assert not boxes_overlap(a, b)
        assert [s.stop - s.start for s in a] == [s.stop - s.start for s in b]
        assert all(10 <= s.stop - s.start <= 15 and s.start >= 3 and s.stop <= dim - 3 for s, dim in zip(a, spatial))
        ra, rb = (slice(None), *a), (slice(None), *b)
        assert torch.equal(out[ra], img[rb]) and torch.equal(out[rb], img[ra])
        rest = torch.ones(spatial, dtype=torch.bool)
        rest[a] = False
        rest[b] = False
        assert torch.equal(out[:, rest], img[:, rest])


def test_pairs_never_overlap_even_when_the_image_is_crowded() -> None:
    """In a 22x22 image, random 5-7 pixel patches of a pair overlap often; rejection must keep every pair apart
    (DiRA's test `y1 < y2 + s or y2 < y1 + s` lets them overlap)."""
    transform = RandPatchSwapd("image", num_swaps=10, patch_size_range=(5, 7), margin=1)
    transform.set_random_state(seed=1)
    img = _distinct((1, 22, 22))
    for _ in range(30):
        out = transform({"image": img})["image"]
        assert len(transform.pairs) == 10
        assert not any(boxes_overlap(a, b) for a, b in transform.pairs)
        # exchanges compose to a permutation: no value lost or duplicated, even where pairs overlap each other
        assert torch.equal(torch.sort(out.flatten()).values, torch.sort(img.flatten()).values)
        assert not torch.equal(out, img)


def test_swap_count_range() -> None:
    transform = RandPatchSwapd("image", num_swaps=2, max_swaps=4, patch_size_range=(3, 4))
    transform.set_random_state(seed=2)
    counts = set()
    for _ in range(40):
        transform.randomize((32, 32, 16))
        counts.add(len(transform.pairs))
    assert counts == {2, 3, 4}


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"num_swaps": 0}, "num_swaps"),
        ({"num_swaps": 3, "max_swaps": 2}, "max_swaps"),
        ({"patch_size_range": (0, 3)}, "positive"),
        ({"patch_size_range": (5, 3)}, "low <= high"),
        ({"margin": -1}, "margin"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RandPatchSwapd("image", **kwargs)


def test_images_too_small_for_two_disjoint_patches_are_refused() -> None:
    with pytest.raises(ValueError, match="two disjoint patches of edge 10 .* some axis needs at least 26 voxels"):
        RandPatchSwapd("image")({"image": torch.rand(1, 24, 24, 24)})
    with pytest.raises(ValueError, match="a patch of edge 10"):
        RandPatchSwapd("image")({"image": torch.rand(1, 64, 12)})
