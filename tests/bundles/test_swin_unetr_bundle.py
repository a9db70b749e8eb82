"""The Swin UNETR bundle's own claims: its stage outputs load into a plain MONAI SwinUNETR (encoder from stage 1,
encoder and decoder from stage 2 on), stage 1 builds no decoder block, and the metadata and inference config
describe the SwinUNETR a transfer task rebuilds. The shared contract (chain, joint, resume, MONAI Label, metadata,
inference, export, two gloo ranks) is checked for every bundle by ``test_method_bundles*.py``."""

from __future__ import annotations

import json
import os

import torch
from bundle_workflows import BUNDLES, config
from monai.bundle import ConfigParser
from monai.networks.nets import SwinUNETR

from common.transfer import backbone_settings, build_backbone, read_ssl_bundle

BUNDLE = "swin_unetr"
NETWORK_IDS = ("in_channels", "feature_size", "patch_size", "depths", "num_heads", "window_size", "norm_name", "use_v2", "normalize", "spatial_dims")


def _settings(stage_dir: str) -> dict:
    """The SwinUNETR arguments a stage trained with, from its run record (what a fine-tuning config uses)."""
    settings = json.load(open(os.path.join(stage_dir, "run.json")))["settings"]
    return {k: settings[k] for k in NETWORK_IDS}


def _plain_swin_unetr(stage_dir: str, out_channels: int = 1) -> SwinUNETR:
    """A fresh MONAI SwinUNETR with the settings the stage trained with."""
    return SwinUNETR(out_channels=out_channels, **_settings(stage_dir))


def _load(stage_dir: str, name: str) -> dict[str, torch.Tensor]:
    return torch.load(os.path.join(stage_dir, f"{name}.pt"), weights_only=True)


def test_stage_outputs_load_into_a_plain_monai_swin_unetr(chained_stages) -> None:
    stages = chained_stages(BUNDLE)
    assert not stages["started"]["stage1"]["decoder"]  # stage 1 builds no decoder block
    for stage in ("stage1", "stage2", "stage3"):
        stage_dir = stages[stage]
        net = _plain_swin_unetr(stage_dir)
        encoder = _load(stage_dir, "encoder")
        net.swinViT.load_state_dict(encoder, strict=True)  # encoder.pt IS swinViT's state dict
        result = net.load_state_dict({f"swinViT.{k}": v for k, v in encoder.items()}, strict=False)
        decoder_keys = {k for k in net.state_dict() if not k.startswith("swinViT.")}
        assert not result.unexpected_keys and set(result.missing_keys) == decoder_keys  # zero missing encoder keys
        if stage == "stage1":
            assert not os.path.exists(os.path.join(stage_dir, "model.pt"))
            continue
        decoder = _load(stage_dir, "decoder")
        result = net.load_state_dict(decoder, strict=False)  # decoder.pt: SwinUNETR's keys as they are
        assert not result.unexpected_keys and all(k.startswith("swinViT.") for k in result.missing_keys)
        assert set(decoder) == decoder_keys  # zero missing decoder keys
        model_pt = _load(stage_dir, "model")
        net.load_state_dict(model_pt, strict=True)  # model.pt IS the SwinUNETR state dict ...
        assert model_pt.keys() == {f"swinViT.{k}" for k in encoder} | set(decoder)  # ... made of the two files
        assert all(torch.equal(model_pt[f"swinViT.{k}"], v) for k, v in encoder.items())
        assert all(torch.equal(model_pt[k], v) for k, v in decoder.items())
        # the README's fine-tuning recipe: all but the 1-channel output layer into a 14-class SwinUNETR
        btcv = _plain_swin_unetr(stage_dir, out_channels=14)
        missing, unexpected = btcv.load_state_dict({k: v for k, v in model_pt.items() if not k.startswith("out.")}, strict=False)
        assert unexpected == [] and missing == ["out.conv.conv.weight", "out.conv.conv.bias"]
        manifest = json.load(open(os.path.join(stage_dir, "components.json")))
        assert manifest["model"]["class"] == "SwinUNETR" and manifest["components"]["encoder"]["class"] == "SwinTransformer"


def test_inference_builds_the_swin_unetr_training_built() -> None:
    """inference.yaml repeats the network settings of train.yaml (the generator copies only the template's ids), and
    with the CPU overlays on both it builds the very network whose state dict a stage exports as model.pt."""
    train, infer = ConfigParser(), ConfigParser()
    train.read_config(config("train", BUNDLE))
    infer.read_config(config("inference", BUNDLE))
    for key in NETWORK_IDS + ("roi_size", "spacing", "intensity_preset", "orientation"):
        assert infer.get_parsed_content(key) == train.get_parsed_content(key), key
    assert type(infer.get_parsed_content("network_def")) is SwinUNETR
    for overlay in ("smoke", "demo"):
        train, infer = ConfigParser(), ConfigParser()
        train.read_config([config("train", BUNDLE), config("stage2", BUNDLE), config(overlay, BUNDLE)])
        infer.read_config([config("inference", BUNDLE), config(overlay, BUNDLE)])
        exported = train.get_parsed_content("network_def").restorer().state_dict()
        served = infer.get_parsed_content("network_def").state_dict()
        assert {k: v.shape for k, v in exported.items()} == {k: v.shape for k, v in served.items()}, overlay


def test_metadata_tells_a_transfer_task_how_to_rebuild_and_load_the_swin_unetr(chained_stages) -> None:
    stage_dir = chained_stages(BUNDLE)["stage2"]
    bundle = read_ssl_bundle(os.path.join(BUNDLES, BUNDLE))
    assert bundle.components == {"encoder": "swinViT", "decoder": ""} and bundle.out_activation_id is None
    assert json.load(open(config("metadata.json", BUNDLE)))["united_ssl"]["torchscript"] == "trace"  # script fails
    network = build_backbone(bundle, backbone_settings(stage_dir), out_channels=3)  # run.json's settings, 3 classes
    assert type(network) is SwinUNETR and network.out.conv.conv.out_channels == 3
    # encoder.pt loads strictly at components["encoder"]; decoder.pt holds exactly the root's other keys
    network.get_submodule(bundle.components["encoder"]).load_state_dict(_load(stage_dir, "encoder"), strict=True)
    decoder = _load(stage_dir, "decoder")
    root = network.get_submodule(bundle.components["decoder"]).state_dict()
    assert set(decoder) == {k for k in root if not k.startswith(bundle.components["encoder"] + ".")}
    differing = sorted(k for k in decoder if decoder[k].shape != root[k].shape)
    assert differing == ["out.conv.conv.bias", "out.conv.conv.weight"]  # only the output layer: 1 channel -> 3 classes
