"""Initialising target networks from a stage folder: which components load, the report, errors and warnings."""

from __future__ import annotations

import json
import os

import pytest
import torch
from pretrained_stages import ROTATION

from common.transfer import (
    backbone_settings,
    build_classification_network,
    build_segmentation_network,
    components_for,
    initialise,
)

ROI = [16, 16, 16]


def _saved(stage_dir: str, name: str) -> dict:
    return torch.load(os.path.join(stage_dir, f"{name}.pt"), weights_only=True)


def test_encoder_init_loads_the_encoder_only(stage2_dir, tmp_path) -> None:
    net = build_segmentation_network(ROTATION, 3, backbone_settings(stage2_dir))
    decoder_before = {k: v.clone() for k, v in net.decoder.state_dict().items()}
    report = initialise(net, "encoder", ROTATION, stage2_dir, ROI, report_path=str(tmp_path / "transfer.json"))
    assert [c.component for c in report.components] == ["encoder"]
    assert all(torch.equal(net.encoder.state_dict()[k], v) for k, v in _saved(stage2_dir, "encoder").items())
    assert all(torch.equal(net.decoder.state_dict()[k], v) for k, v in decoder_before.items())
    record = json.load(open(tmp_path / "transfer.json"))
    assert record["init"] == "encoder" and record["stage"] == 2 and record["method"] == "rotation"
    assert record["components"][0]["loaded"] == len(_saved(stage2_dir, "encoder"))


def test_encoder_decoder_init_reinitialises_only_the_output_layer(stage2_dir) -> None:
    net = build_segmentation_network(ROTATION, 3, backbone_settings(stage2_dir))
    report = initialise(net, "encoder+decoder", ROTATION, stage2_dir, ROI)
    decoder = report.components[1]
    assert decoder.component == "decoder" and decoder.reinitialised == ["out.conv.bias", "out.conv.weight"]
    saved = _saved(stage2_dir, "decoder")
    assert all(torch.equal(net.decoder.state_dict()[k], v) for k, v in saved.items() if not k.startswith("out."))
    pretrained = report.pretrained_parameters(net)
    assert "encoder.levels.0.0.conv.weight" in pretrained and "decoder.blocks.0.0.conv.weight" in pretrained
    assert "decoder.out.conv.weight" not in pretrained


def test_four_channel_task_from_ct_weights(stage2_dir) -> None:
    net = build_segmentation_network(ROTATION, 2, backbone_settings(stage2_dir), in_channels=4, spatial_size=ROI)
    report = initialise(net, "encoder", ROTATION, stage2_dir, ROI)
    assert report.components[0].adapted == ["levels.0.0.conv.weight"]
    expected = _saved(stage2_dir, "encoder")["levels.0.0.conv.weight"].sum(1, keepdim=True) / 4
    torch.testing.assert_close(net.encoder.levels[0][0].conv.weight, expected.expand(-1, 4, -1, -1, -1))


def test_classifier_takes_the_encoder(stage2_dir) -> None:
    net = build_classification_network(ROTATION, 4, ROI, backbone_settings(stage2_dir), freeze_encoder=True)
    report = initialise(net, "encoder", ROTATION, stage2_dir, ROI)
    assert report.components[0].prefix == "encoder"
    assert all(torch.equal(net.encoder.state_dict()[k], v) for k, v in _saved(stage2_dir, "encoder").items())
    with pytest.raises(ValueError, match="only the encoder"):
        components_for(net, "encoder+decoder", {"encoder": "encoder", "decoder": "decoder"})


def test_stage1_has_no_decoder_to_load(stage1_dir) -> None:
    net = build_segmentation_network(ROTATION, 2, backbone_settings(stage1_dir))
    with pytest.raises(FileNotFoundError, match=r"stage1[/\\]decoder\.pt not found.*stage 2"):
        initialise(net, "encoder+decoder", ROTATION, stage1_dir, ROI)


def test_random_init_loads_nothing_and_bad_init_is_refused(stage2_dir) -> None:
    net = build_segmentation_network(ROTATION, 2, backbone_settings(stage2_dir))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert initialise(net, "random").components == []
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
    with pytest.raises(ValueError, match="init must be one of"):
        initialise(net, "decoder", ROTATION, stage2_dir)
    with pytest.raises(ValueError, match="pretrained_dir"):
        initialise(net, "encoder", ROTATION, None)


def test_preprocessing_differences_from_pretraining_are_warned(stage2_dir, caplog) -> None:
    net = build_segmentation_network(ROTATION, 2, backbone_settings(stage2_dir))
    task = {"spacing": [1.5, 1.5, 1.5], "intensity_preset": "ct", "orientation": "RAS"}
    with caplog.at_level("WARNING"):
        report = initialise(net, "encoder", ROTATION, stage2_dir, ROI, task_settings=task)
    assert len(report.warnings) == 1 and report.warnings[0].startswith("spacing")
    assert "spacing: pretrained with [3.0, 3.0, 3.0]" in caplog.text
    same = initialise(net, "encoder", ROTATION, stage2_dir, ROI, task_settings={"spacing": [3, 3, 3]})
    assert same.warnings == []


def test_root_decoder_loads_around_the_encoder_component(swin_bundle, tmp_path) -> None:
    """Swin UNETR's decoder is the network root (``decoder: ""``): its file holds every key but ``swinViT.*``."""
    meta_path = os.path.join(swin_bundle, "configs", "metadata.json")
    meta = json.load(open(meta_path))
    meta["united_ssl"]["components"]["decoder"] = ""
    json.dump(meta, open(meta_path, "w"))
    stage = tmp_path / "swin_stage2"
    stage.mkdir()
    torch.manual_seed(3)
    pretrained = build_segmentation_network(swin_bundle, 1)
    state = pretrained.state_dict()
    torch.save({k[len("swinViT.") :]: v for k, v in state.items() if k.startswith("swinViT.")}, stage / "encoder.pt")
    torch.save({k: v for k, v in state.items() if not k.startswith("swinViT.")}, stage / "decoder.pt")
    torch.manual_seed(4)
    net = build_segmentation_network(swin_bundle, 3)
    fresh = {k: v.clone() for k, v in net.state_dict().items()}

    encoder_only = initialise(net, "encoder", swin_bundle, str(stage))
    assert encoder_only.components[0].prefix == "swinViT"
    loaded = net.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state if k.startswith("swinViT."))
    assert all(torch.equal(loaded[k], fresh[k]) for k in state if not k.startswith("swinViT."))  # decoder untouched

    net = build_segmentation_network(swin_bundle, 3)
    report = initialise(net, "encoder+decoder", swin_bundle, str(stage))
    decoder = report.components[1]
    assert decoder.prefix == "" and decoder.excluded == ["swinViT"] and decoder.reinitialised == ["out.conv.conv.bias", "out.conv.conv.weight"]
    loaded = net.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state if not k.startswith("out."))  # every other tensor pretrained
    pretrained_names = report.pretrained_parameters(net)
    assert "swinViT.patch_embed.proj.weight" in pretrained_names, sorted(pretrained_names)[:5]
    assert "decoder1.conv_block.conv1.conv.weight" in pretrained_names
    assert "out.conv.conv.weight" not in pretrained_names

    torch.save({**torch.load(stage / "decoder.pt"), "swinViT.patch_embed.proj.weight": torch.zeros(1)}, stage / "decoder.pt")
    with pytest.raises(RuntimeError, match=r"unexpected keys \(1\).*swinViT.patch_embed.proj.weight"):
        initialise(build_segmentation_network(swin_bundle, 3), "encoder+decoder", swin_bundle, str(stage))
