"""Strict component loading: counts, the decoder's re-initialised output layer, adapted input channels, errors."""

from __future__ import annotations

import os

import pytest
import torch

from common.networks import GenesisDecoder, GenesisEncoder
from common.transfer import load_component, output_layer_keys


def _state(path: str) -> dict:
    return torch.load(path, weights_only=True)


def test_encoder_loads_every_tensor(stage2_dir) -> None:
    encoder = GenesisEncoder(3, 1, 2, 3)
    report = load_component(encoder, os.path.join(stage2_dir, "encoder.pt"), "encoder", "encoder")
    saved = _state(os.path.join(stage2_dir, "encoder.pt"))
    assert report.loaded == report.total == len(saved) and not report.reinitialised and not report.adapted
    assert all(torch.equal(encoder.state_dict()[k], v) for k, v in saved.items())


def test_decoder_output_layer_is_the_only_allowed_difference_and_keeps_its_fresh_values(stage2_dir) -> None:
    decoder = GenesisDecoder(3, 4, 2, 3, upsample="nearest", out_activation=None)
    fresh = {k: v.clone() for k, v in decoder.state_dict().items()}
    assert output_layer_keys(decoder) == ["out.conv.weight", "out.conv.bias"]
    report = load_component(
        decoder, os.path.join(stage2_dir, "decoder.pt"), "decoder", "decoder", reinitialise=output_layer_keys(decoder)
    )
    assert report.reinitialised == ["out.conv.bias", "out.conv.weight"]
    assert report.loaded == report.total - 2
    saved = _state(os.path.join(stage2_dir, "decoder.pt"))
    state = decoder.state_dict()
    assert torch.equal(state["out.conv.weight"], fresh["out.conv.weight"])
    assert all(torch.equal(state[k], v) for k, v in saved.items() if not k.startswith("out."))
    assert report.loaded_keys(["blocks.0.0.conv.weight", "out.conv.weight"]) == ["decoder.blocks.0.0.conv.weight"]


def test_a_width_mismatch_names_the_file_and_the_keys(stage2_dir) -> None:
    path = os.path.join(stage2_dir, "encoder.pt")
    with pytest.raises(RuntimeError) as error:
        load_component(GenesisEncoder(3, 1, 4, 3), path, "encoder")
    assert "encoder.pt" in str(error.value) and "levels.0.0.conv.weight" in str(error.value)
    # a 4th level: 2 convolutions x (weight, bias + batch norm weight, bias, running mean, var, count) = 14 keys
    with pytest.raises(RuntimeError, match="missing keys \\(14\\)"):
        load_component(GenesisEncoder(3, 1, 2, 4), path, "encoder")


def test_output_layer_exception_does_not_cover_other_layers(stage2_dir) -> None:
    decoder = GenesisDecoder(3, 1, 3, 3, upsample="nearest")  # another width: every layer differs
    with pytest.raises(RuntimeError, match="shape mismatches"):
        load_component(decoder, os.path.join(stage2_dir, "decoder.pt"), "decoder", reinitialise=output_layer_keys(decoder))


def test_missing_file_and_extra_keys(stage2_dir, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"decoder\.pt not found"):
        load_component(GenesisDecoder(3, 1, 2, 3), str(tmp_path / "decoder.pt"), "decoder")
    state = _state(os.path.join(stage2_dir, "encoder.pt"))
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "encoder.pt")
    with pytest.raises(RuntimeError, match=r"unexpected keys \(1\): \['extra.weight'\]"):
        load_component(GenesisEncoder(3, 1, 2, 3), str(tmp_path / "encoder.pt"), "encoder")


def test_ct_weights_load_into_a_four_channel_encoder(stage2_dir) -> None:
    pretrained = GenesisEncoder(3, 1, 2, 3)
    pretrained.load_state_dict(_state(os.path.join(stage2_dir, "encoder.pt")))
    mri = GenesisEncoder(3, 4, 2, 3)
    report = load_component(
        mri, os.path.join(stage2_dir, "encoder.pt"), "encoder", adapt_input={"levels.0.0.conv.weight"}
    )
    assert report.adapted == ["levels.0.0.conv.weight"] and report.loaded == report.total
    image = torch.randn(2, 1, 8, 8, 8)
    pretrained.eval(), mri.eval()
    with torch.no_grad():
        for a, b in zip(pretrained(image), mri(image.expand(-1, 4, -1, -1, -1))):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="levels.0.0.conv.weight"):  # without the permission it is a mismatch
        load_component(GenesisEncoder(3, 4, 2, 3), os.path.join(stage2_dir, "encoder.pt"), "encoder")
