"""Cube ids: volume v's cubes get v*S .. v*S+S-1, whatever the order the loader asks for them."""

from __future__ import annotations

import pytest
import torch
from monai.data import CacheDataset, DataLoader

from common.clustering import CubeIdDataset, cube_ids
from common.transforms import FixedCubeSamplesd


def _volumes() -> list[dict]:
    return [{"image": torch.full((1, 12, 12, 12), float(v)) + torch.rand(1, 12, 12, 12) * 0.1} for v in range(3)]


def test_ids_follow_the_volume_and_the_cube() -> None:
    dataset = CacheDataset(_volumes(), FixedCubeSamplesd("image", [4, 4, 4], num_samples=5, seed=0), progress=False)
    wrapped = CubeIdDataset(dataset, samples_per_volume=5)
    assert len(wrapped) == 3 and wrapped.num_cubes == 15
    assert [int(c["cube_id"]) for c in wrapped[2]] == cube_ids(2, 5) == [10, 11, 12, 13, 14]
    batch = next(iter(DataLoader(wrapped, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(1))))
    for image, cube_id in zip(batch["image"], batch["cube_id"]):
        volume, j = divmod(int(cube_id), 5)
        assert torch.equal(image, dataset[volume][j]["image"])  # the id names this very cube


def test_a_wrong_number_of_cubes_is_named() -> None:
    dataset = CacheDataset(_volumes(), FixedCubeSamplesd("image", [4, 4, 4], num_samples=2), progress=False)
    with pytest.raises(ValueError, match="samples_per_volume=3"):
        CubeIdDataset(dataset, samples_per_volume=3)[0]
