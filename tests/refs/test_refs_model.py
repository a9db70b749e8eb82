"""common.refs.model: the reference head reads the decoder's last features (the encoder's without a decoder), the
method's components keep their names and files, and the head is handed off strictly."""

from __future__ import annotations

import pytest
import torch

from common.networks import ClassificationHead, GenesisDecoder, GenesisEncoder, UnitedModel
from common.refs import ReferenceModel, last_parametrised_layer, load_reference_head


def _united(decoder: bool = True) -> UnitedModel:
    return UnitedModel(
        GenesisEncoder(3, 1, 2, 3),
        ClassificationHead(3, 16, 4, conv_channels=None, hidden_features=8),
        GenesisDecoder(3, 1, 2, 3) if decoder else None,
    )


def test_the_head_reads_the_input_of_the_decoders_output_layer() -> None:
    model = ReferenceModel(_united(), num_classes=3, probe_size=(16, 16, 16))
    assert model.uses_decoder and model.feature_layer == "decoder." + last_parametrised_layer(model.model.decoder)
    image = torch.rand(2, 1, 16, 16, 16)
    seen: list[torch.Tensor] = []
    layer = model.model.get_submodule(model.feature_layer)
    handle = layer.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    logits = model(image, reference=True)
    handle.remove()
    assert logits.shape == (2, 3, 16, 16, 16)
    # the logits are the 1x1x1 head applied to exactly those features (full resolution: no resizing)
    torch.testing.assert_close(logits, model.reference_head.conv(seen[0]))
    assert seen[0].shape[1] == model.reference_head.conv.in_channels
    assert not layer._forward_pre_hooks  # the capture hook is removed after each call


def test_without_a_decoder_the_head_reads_the_deepest_encoder_map_resized_to_the_image() -> None:
    model = ReferenceModel(_united(decoder=False), num_classes=2, probe_size=(16, 16, 16))
    assert not model.uses_decoder
    image = torch.rand(1, 1, 16, 16, 16)
    deepest = model.model.encoder(image)[-1]
    assert model.reference_head.conv.in_channels == deepest.shape[1] and deepest.shape[2] < 16
    assert model(image, reference=True).shape == (1, 2, 16, 16, 16)


def test_the_methods_forward_and_components_are_unchanged() -> None:
    inner = _united()
    model = ReferenceModel(inner, num_classes=3, probe_size=(16, 16, 16))
    image = torch.rand(1, 1, 16, 16, 16)
    inner.eval(), model.eval()
    torch.testing.assert_close(model(image)["head"], inner(image)["head"])
    assert model.encoder is inner.encoder and model.decoder is inner.decoder and model.head is inner.head
    assert list(model.components()) == ["encoder", "head", "decoder", "reference_head"]
    assert set(model.restorer().state_dict()) == set(inner.restorer().state_dict())  # model.pt has no head
    assert model.shared_parameters() == list(inner.encoder.parameters())
    assert any(p is model.reference_head.conv.conv.weight for p in model.parameters())  # the optimizer sees it


def test_an_unknown_feature_layer_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'decoder.nope'"):
        ReferenceModel(_united(), num_classes=3, probe_size=(16, 16, 16), feature_layer="decoder.nope")


def test_the_reference_head_is_handed_off_strictly(tmp_path) -> None:
    source = ReferenceModel(_united(), num_classes=3, probe_size=(16, 16, 16))
    torch.save(source.reference_head.state_dict(), tmp_path / "reference_head.pt")
    target = ReferenceModel(_united(), num_classes=3, probe_size=(16, 16, 16))
    assert load_reference_head(target, str(tmp_path), handoff=False) is target
    assert not torch.equal(target.reference_head.conv.conv.weight, source.reference_head.conv.conv.weight)
    load_reference_head(target, str(tmp_path), handoff=True)
    assert torch.equal(target.reference_head.conv.conv.weight, source.reference_head.conv.conv.weight)
    other = ReferenceModel(_united(decoder=False), num_classes=3, probe_size=(16, 16, 16))  # 16 channels, not 4
    with pytest.raises(Exception, match="reference_head"):
        load_reference_head(other, str(tmp_path), handoff=True)
    with pytest.raises(Exception, match="reference_head"):
        load_reference_head(target, str(tmp_path / "missing"), handoff=True)
