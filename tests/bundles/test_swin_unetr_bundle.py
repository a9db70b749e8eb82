"""The Swin UNETR bundle's own claims: its stage outputs load into a plain MONAI SwinUNETR (encoder from stage 1,
encoder and decoder from stage 2 on), stage 1 builds no decoder block, and the metadata and inference config
describe the SwinUNETR a transfer task rebuilds. The shared contract (chain, joint, resume, MONAI Label, metadata,
inference, export, two gloo ranks) is checked for every bundle by ``test_method_bundles*.py``."""

from __future__ import annotations

import json
import os

import torch
from conftest import BUNDLES, config, run
from monai.bundle import ConfigParser
from monai.networks.nets import SwinUNETR

from common.transfer import backbone_settings, build_backbone, read_ssl_bundle

BUNDLE = "swin_unetr"
NETWORK_IDS = ("in_channels", "feature_size", "patch_size", "depths", "num_heads", "window_size", "norm_name", "use_v2", "normalize", "spatial_dims")


def _plain_swin_unetr(workflow) -> SwinUNETR:
    """A fresh MONAI SwinUNETR with the settings the stage trained with (what a fine-tuning config builds)."""
    get = workflow.parser.get_parsed_content
    kwargs = {k: get(k) for k in NETWORK_IDS if k != "in_channels"}
    return SwinUNETR(in_channels=get("in_channels"), out_channels=get("in_channels"), **kwargs)


def _load(stage_dir: str, name: str) -> dict[str, torch.Tensor]:
    return torch.load(os.path.join(stage_dir, f"{name}.pt"), weights_only=True)


def test_stage_outputs_load_into_a_plain_monai_swin_unetr(make_workflow) -> None:
    for stage in ("stage1", "stage2", "stage3"):
        workflow = make_workflow(stage, "smoke", bundle=BUNDLE)
        workflow.initialize()
        model = workflow.parser.get_parsed_content("network_def")
        if stage == "stage1":  # no decoder block is built, so none is optimised or synchronised
            optimised = {id(p) for group in workflow.parser.get_parsed_content("optimizer").param_groups for p in group["params"]}
            assert model.decoder is None and optimised == {id(p) for p in model.parameters()}
        workflow.run()
        workflow.finalize()
        stage_dir = workflow.parser.get_parsed_content("stage_dir")
        net = _plain_swin_unetr(workflow)
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
        manifest = json.load(open(os.path.join(stage_dir, "components.json")))
        assert manifest["model"]["class"] == "SwinUNETR" and manifest["components"]["encoder"]["class"] == "SwinTransformer"


def test_inference_builds_the_swin_unetr_training_built() -> None:
    """inference.yaml repeats the network settings of train.yaml (the generator copies only the template's ids)."""
    train, infer = ConfigParser(), ConfigParser()
    train.read_config(config("train", BUNDLE))
    infer.read_config(config("inference", BUNDLE))
    for key in NETWORK_IDS + ("roi_size", "spacing", "intensity_preset", "orientation"):
        assert infer.get_parsed_content(key) == train.get_parsed_content(key), key
    for overlay in ("smoke", "demo"):  # the CPU overlays set the same network ids for training and inference
        assert {k for k in ConfigParser.load_config_file(config(overlay, BUNDLE)) if k in NETWORK_IDS} <= set(NETWORK_IDS)
    assert type(infer.get_parsed_content("network_def")) is SwinUNETR


def test_metadata_tells_a_transfer_task_how_to_rebuild_and_load_the_swin_unetr(make_workflow) -> None:
    stage2 = run(make_workflow("stage2", "smoke", bundle=BUNDLE, handoff_components=[]))
    stage_dir = stage2.parser.get_parsed_content("stage_dir")
    bundle = read_ssl_bundle(os.path.join(BUNDLES, BUNDLE))
    assert bundle.components == {"encoder": "swinViT", "decoder": ""} and bundle.out_activation_id is None
    network = build_backbone(bundle, backbone_settings(stage_dir), out_channels=3)  # run.json's settings, 3 classes
    assert type(network) is SwinUNETR and network.out.conv.conv.out_channels == 3
    # encoder.pt loads strictly at components["encoder"]; decoder.pt holds exactly the root's other keys
    network.get_submodule(bundle.components["encoder"]).load_state_dict(_load(stage_dir, "encoder"), strict=True)
    decoder = _load(stage_dir, "decoder")
    root = network.get_submodule(bundle.components["decoder"]).state_dict()
    assert set(decoder) == {k for k in root if not k.startswith(bundle.components["encoder"] + ".")}
    differing = sorted(k for k in decoder if decoder[k].shape != root[k].shape)
    assert differing == ["out.conv.conv.bias", "out.conv.conv.weight"]  # only the output layer: 1 channel -> 3 classes
