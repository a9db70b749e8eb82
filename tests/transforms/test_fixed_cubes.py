"""Fixed cubes: the same crops of a volume at every call (a cube keeps its identity across epochs)."""

from __future__ import annotations

import torch

from common.transforms import FixedCubeSamplesd


def test_fixed_cubes_are_the_same_at_every_call() -> None:
    t = FixedCubeSamplesd("image", [4, 4, 4], num_samples=6, seed=3)
    volume = {"image": torch.rand(1, 12, 12, 12)}
    first, second = t(volume), t(volume)
    assert len(first) == 6 and all(torch.equal(a["image"], b["image"]) for a, b in zip(first, second))
    assert len({c["image"].numpy().tobytes() for c in first}) > 1  # different positions within a volume
    assert type(first[0]["image"]) is torch.Tensor  # plain tensors
    other = FixedCubeSamplesd("image", [4, 4, 4], num_samples=6, seed=4)(volume)
    assert any(not torch.equal(a["image"], b["image"]) for a, b in zip(first, other))


def test_cache_dataset_caches_the_cubes_before_the_random_transforms() -> None:
    from monai.data import CacheDataset
    from monai.transforms import Compose, RandFlipd

    crop = FixedCubeSamplesd("image", [4, 4, 4], num_samples=3, seed=0)
    volume = {"image": torch.rand(1, 12, 12, 12)}
    dataset = CacheDataset([volume], Compose([crop, RandFlipd("image", prob=1.0, spatial_axis=0)]), progress=False)
    cached = dataset._cache[0]
    assert isinstance(cached, list) and len(cached) == 3  # the cubes, not the volume
    for cube, out, reference in zip(cached, dataset[0], crop(volume)):
        assert torch.equal(cube["image"], reference["image"])
        assert torch.equal(out["image"], reference["image"].flip(1))  # the random part runs on every access
