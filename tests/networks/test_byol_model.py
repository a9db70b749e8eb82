"""BYOL's model: the predictor beside the head, a component of its own; encoder.pt stays a plain encoder."""

from __future__ import annotations

import pytest
import torch

from common.networks import MLP, BYOLModel, GenesisDecoder, GenesisEncoder, ProjectionHead


def _model(decoder: bool) -> BYOLModel:
    return BYOLModel(
        GenesisEncoder(3, 1, 2, 3),
        ProjectionHead(3, 16, 16, 8, batch_norm=True),
        MLP(8, 16, 8, batch_norm=True),
        GenesisDecoder(3, 1, 2, 3) if decoder else None,
    )


@pytest.mark.parametrize("decoder", [False, True])
def test_outputs_and_components(decoder: bool) -> None:
    model = _model(decoder)
    out = model(torch.rand(2, 1, 16, 16, 16))
    assert out["head"].shape == out["prediction"].shape == (2, 8)
    torch.testing.assert_close(out["prediction"], model.predictor(out["head"]))
    assert ("reconstruction" in out) == decoder
    assert set(model.components()) == {"encoder", "head", "predictor"} | ({"decoder"} if decoder else set())
    assert set(model.encoder.state_dict()) == set(GenesisEncoder(3, 1, 2, 3).state_dict())  # a plain encoder
    with pytest.raises(ValueError):
        BYOLModel(GenesisEncoder(3, 1, 2, 3), None, MLP(8, 16, 8))
