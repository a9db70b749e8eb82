"""PCRL's model: the decoder conditioned on the augmentation code, the hybrid path, the exported restorer."""

from __future__ import annotations

import pytest
import torch

from common.networks import GenesisDecoder, GenesisEncoder, PCRLModel, PCRLRestorer, ProjectionHead
from common.transforms import identity_code, spatial_code


def _model(decoder: bool = True) -> PCRLModel:
    torch.manual_seed(0)
    return PCRLModel(
        GenesisEncoder(3, 1, 2, 3), ProjectionHead(3, 16, 16, 8), GenesisDecoder(3, 1, 2, 3) if decoder else None, embedding_hidden=8
    ).eval()


def test_stage1_has_no_embedding_and_no_reconstruction() -> None:
    model = _model(decoder=False)
    out = model(torch.rand(2, 1, 16, 16, 16), code=identity_code(2))
    assert set(out) == {"features", "head"} and set(model.components()) == {"encoder", "head"}
    assert model.restorer() is None


def test_the_code_conditions_the_reconstruction() -> None:
    model = _model().train()  # batch statistics: at initialisation the eval-mode decoder barely reacts to anything
    x = torch.rand(2, 1, 16, 16, 16)
    flipped = torch.stack([spatial_code([True, False, False], 1)] * 2)
    plain = model(x)["reconstruction"]
    torch.testing.assert_close(model(x, code=identity_code(2))["reconstruction"], plain)  # default: the identity
    assert (model(x, code=flipped)["reconstruction"] - plain).abs().max() > 1e-6  # another code, another output
    # the conditioning scales the bottleneck channel-wise by sigmoid(MLP(code)) before decoding
    features = model.encoder(x)
    scale = model.aug_embedding(flipped)
    expected = model.decoder([*features[:-1], features[-1] * scale[:, :, None, None, None]])
    torch.testing.assert_close(model(x, code=flipped)["reconstruction"], expected)


def test_hybrid_mixes_every_level_of_own_and_other_features() -> None:
    model = _model()
    x, other_image = torch.rand(2, 1, 16, 16, 16), torch.rand(2, 1, 16, 16, 16)
    other = model.encoder(other_image)
    code, other_code = identity_code(2), torch.stack([spatial_code([False, True, False], 2)] * 2)
    out = model(x, code=code, mix_features=other, mix_code=other_code, alpha=1.0)
    torch.testing.assert_close(out["hybrid"], out["reconstruction"])  # alpha = 1: only its own features
    out0 = model(x, mix_features=other, mix_code=other_code, alpha=0.0)
    torch.testing.assert_close(out0["hybrid"], model(other_image, code=other_code)["reconstruction"])  # alpha = 0
    mid = model(x, mix_features=other, mix_code=other_code, alpha=0.7)["hybrid"]
    own, theirs = model.condition(model.encoder(x), None), model.condition(other, other_code)
    torch.testing.assert_close(mid, model.decoder([0.7 * a + 0.3 * b for a, b in zip(own, theirs)]))
    with pytest.raises(ValueError):
        model(x, mix_features=other)  # no alpha


def test_restorer_is_the_identity_conditioned_decoder_with_its_own_keys() -> None:
    model = _model()
    restorer = model.restorer()
    assert isinstance(restorer, PCRLRestorer) and set(model.components()) == {"encoder", "head", "decoder", "aug_embedding"}
    x = torch.rand(1, 1, 16, 16, 16)
    torch.testing.assert_close(restorer(x), model(x)["reconstruction"])
    keys = set(restorer.state_dict())
    assert {k.split(".")[0] for k in keys} == {"encoder", "decoder", "aug_embedding"}
    assert keys == {k for k in model.state_dict() if not k.startswith("head.")}
    traced = torch.jit.trace(restorer, x)  # ckpt_export traces it
    torch.testing.assert_close(traced(x), restorer(x))
