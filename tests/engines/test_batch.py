"""prepare_ssl_batch moves tensors, strips MetaTensor and keeps other values."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from common.engines import prepare_ssl_batch


def test_moves_tensors_and_keeps_the_rest() -> None:
    batch = {"image": MetaTensor(torch.rand(2, 1, 4, 4, 4)), "label": torch.tensor([1, 2]), "source": ["a", "b"]}
    out = prepare_ssl_batch(batch, torch.device("cpu"))
    assert type(out["image"]) is torch.Tensor and torch.equal(out["image"], batch["image"].as_tensor())
    assert torch.equal(out["label"], batch["label"]) and out["source"] == ["a", "b"]


def test_rejects_non_dict_and_missing_image() -> None:
    with pytest.raises(TypeError):
        prepare_ssl_batch((torch.zeros(1), torch.zeros(1)))
    with pytest.raises(KeyError, match="image"):
        prepare_ssl_batch({"target": torch.zeros(1)})
