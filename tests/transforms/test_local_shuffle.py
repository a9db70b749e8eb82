"""Local pixel shuffling: voxels move only inside their block, blocks keep their histogram, the rest stays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.transforms import RandLocalPixelShuffled


def _distinct(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """An image whose every voxel value is unique, so a value tells where it came from."""
    n = int(np.prod(shape))
    return torch.from_numpy(np.random.RandomState(seed).permutation(n).astype(np.float64).reshape(shape))


def _last_writer(transform: RandLocalPixelShuffled, spatial: tuple[int, ...]) -> np.ndarray:
    """Index of the last block covering each voxel (-1 outside every block), block by block."""
    owner = np.full(spatial, -1)
    for b, (start, size) in enumerate(zip(transform.block_starts, transform.block_sizes)):
        owner[tuple(slice(s, s + e) for s, e in zip(start, size))] = b
    return owner


@pytest.mark.parametrize("spatial", [(24, 24, 20), (48, 40)])
def test_voxels_move_only_inside_the_block_that_writes_them(spatial: tuple[int, ...]) -> None:
    transform = RandLocalPixelShuffled("image", num_blocks=400, max_block_size=4)
    transform.set_random_state(seed=0)
    img = _distinct((1, *spatial))
    out = transform({"image": img})["image"]
    owner = _last_writer(transform, spatial)
    flat_in, flat_out = img[0].numpy().ravel(), out[0].numpy().ravel()
    position_of = np.empty(flat_in.size, dtype=np.int64)
    position_of[flat_in.astype(np.int64)] = np.arange(flat_in.size)
    source = np.stack(np.unravel_index(position_of[flat_out.astype(np.int64)], spatial), axis=-1)  # (N, ndim)
    outside = owner.ravel() < 0
    assert outside.any() and np.array_equal(flat_out[outside], flat_in[outside])  # outside every block: unchanged
    covered = np.flatnonzero(~outside)
    starts = transform.block_starts[owner.ravel()[covered]]
    sizes = transform.block_sizes[owner.ravel()[covered]]
    assert np.all((source[covered] >= starts) & (source[covered] < starts + sizes))  # from inside its own block
    assert (flat_out[covered] != flat_in[covered]).mean() > 0.5  # and really shuffled

    whole_blocks = 0
    for b, (start, size) in enumerate(zip(transform.block_starts, transform.block_sizes)):
        region = tuple(slice(s, s + e) for s, e in zip(start, size))
        visible = out[0][region].numpy()[owner[region] == b]
        assert len(np.unique(visible)) == visible.size  # one permutation per block: no voxel twice
        if np.all(owner[region] == b):  # not overwritten by a later block: the block keeps its histogram
            whole_blocks += 1
            before, after = img[0][region].numpy(), out[0][region].numpy()
            assert np.array_equal(np.sort(after, axis=None), np.sort(before, axis=None))
    assert whole_blocks > 50


def test_block_edges_follow_the_reference_range() -> None:
    transform = RandLocalPixelShuffled("image", num_blocks=10_000)
    transform.set_random_state(seed=1)
    transform({"image": torch.rand(1, 64, 64, 32)})
    sizes, starts = transform.block_sizes, transform.block_starts
    assert sizes.shape == (10_000, 3)
    assert np.array_equal(sizes.min(axis=0), [1, 1, 1]) and np.array_equal(sizes.max(axis=0), [6, 6, 3])  # dim // 10
    assert starts.min() >= 0 and np.all(starts + sizes <= [64, 64, 32])
    assert np.array_equal(starts.max(axis=0) + 1, [64, 64, 32])  # blocks reach the last voxel too


def test_all_channels_move_together() -> None:
    transform = RandLocalPixelShuffled("image", num_blocks=300, max_block_size=(3, 5, 2))
    img = _distinct((1, 20, 20, 10))
    out = transform({"image": torch.cat([img, img + 1e6])})["image"]
    assert torch.equal(out[1], out[0] + 1e6)
    assert transform.block_sizes.max(axis=0).tolist() == [3, 5, 2]


def test_no_overlap_means_a_permutation_of_the_image() -> None:
    transform = RandLocalPixelShuffled("image", num_blocks=1, max_block_size=8, min_block_size=8)
    img = _distinct((1, 16, 16))
    out = transform({"image": img})["image"]
    assert torch.equal(torch.sort(out.flatten()).values, torch.sort(img.flatten()).values)
    assert (out != img).sum() > 32


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"num_blocks": 0}, "num_blocks"),
        ({"num_blocks": 2.5}, "num_blocks"),
        ({"min_block_size": 0}, "min_block_size"),
        ({"max_block_size": 2, "min_block_size": 3}, "max_block_size"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RandLocalPixelShuffled("image", **kwargs)


def test_invalid_shapes() -> None:
    with pytest.raises(ValueError, match="one value per spatial axis"):
        RandLocalPixelShuffled("image", max_block_size=(2, 2))({"image": torch.rand(1, 8, 8, 8)})
    with pytest.raises(ValueError, match="exceeds the spatial shape"):
        RandLocalPixelShuffled("image", min_block_size=5)({"image": torch.rand(1, 8, 4)})
