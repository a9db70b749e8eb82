"""RandomStates: restoring it replays the same random draws, including each random transform's own generator."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from monai.transforms import Compose, RandFlipd, RandSpatialCropd

from common.engines.random_state import RandomStates, randomizable_transforms
from common.transforms import RandGenesisCorruptiond, RandRotationPretextd


def _draws(pipeline: Compose) -> list:
    data = {"image": torch.rand(1, 24, 24, 24)}
    out = pipeline(data)
    return [torch.rand(3).tolist(), np.random.rand(2).tolist(), random.random(), out["image"].sum().item(), int(out["label"])]


def _pipeline() -> Compose:
    pipeline = Compose(
        [RandSpatialCropd("image", (16, 16, 16), random_size=False), RandFlipd("image", prob=0.5), RandGenesisCorruptiond("image"),
         RandRotationPretextd("image")]
    )  # fmt: skip
    pipeline.set_random_state(seed=7)
    return pipeline


def test_restoring_replays_every_generator() -> None:
    pipeline = _pipeline()
    _draws(pipeline)
    states = RandomStates(pipeline)
    saved = states.state_dict()
    first = _draws(pipeline)
    states.load_state_dict(saved)
    assert _draws(pipeline) == first
    assert _draws(pipeline) != first  # and the generators then move on


def test_the_state_survives_a_weights_only_round_trip(tmp_path) -> None:
    states = RandomStates(_pipeline())
    torch.save(states.state_dict(), tmp_path / "s.pt")
    states.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))


def test_every_random_transform_is_found_once() -> None:
    pipeline = _pipeline()
    found = randomizable_transforms(pipeline)
    assert {type(t).__name__ for t in found} >= {"RandSpatialCropd", "RandFlipd", "RandGenesisCorruptiond", "RandRotationPretextd"}
    assert len({id(t) for t in found}) == len(found)


def test_a_changed_pipeline_is_refused() -> None:
    saved = RandomStates(_pipeline()).state_dict()
    with pytest.raises(ValueError, match="random transforms"):
        RandomStates(Compose([RandFlipd("image")])).load_state_dict(saved)
