"""Model-zoo contract of the rotation bundle: metadata, inference, verify_net_in_out, TorchScript export."""

from __future__ import annotations

import glob
import os

import nibabel as nib
import torch
from conftest import BUNDLE, REPO_ROOT, config, run
from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out

SCHEMA = os.path.join(REPO_ROOT, "tools", "schema", "meta_schema_20240725.json")
SMOKE_NETWORK = {"base_channels": 4, "roi_size": [32, 32, 32]}


def test_metadata_validates_offline_against_the_vendored_schema() -> None:
    verify_metadata(meta_file=config("metadata.json"), filepath=SCHEMA)  # raises on any schema violation


def test_required_bundle_files_exist() -> None:
    for path in ("configs/metadata.json", "configs/inference.yaml", "configs/train.yaml", "configs/logging.conf",
                 "configs/multi_gpu_train.yaml", "docs/README.md", "LICENSE"):
        assert os.path.isfile(os.path.join(BUNDLE, path)), path


def test_inference_restores_volumes_with_the_trained_encoder_decoder(make_workflow, tmp_path) -> None:
    stage2 = run(make_workflow("stage2", "smoke", handoff_components=[]))
    ckpt_dir = stage2.parser.get_parsed_content("stage_dir")
    infer = make_workflow(
        "inference", workflow_type="infer", ckpt_dir=ckpt_dir, prediction_dir=str(tmp_path / "pred"), **SMOKE_NETWORK
    )
    run(infer)
    network = infer.parser.get_parsed_content("network_def")
    exported = torch.load(os.path.join(ckpt_dir, "decoder.pt"), weights_only=True)
    assert all(torch.equal(v, exported[k]) for k, v in network.decoder.state_dict().items())
    outputs = sorted(glob.glob(str(tmp_path / "pred" / "*_reconstruction.nii.gz")))
    assert len(outputs) == len(infer.parser.get_parsed_content("dataset#data")) > 0
    volume = nib.load(outputs[0]).get_fdata()
    assert 0.0 <= volume.min() and volume.max() <= 1.0


def test_verify_net_in_out_and_torchscript_export(make_workflow, tmp_path) -> None:
    stage2 = run(make_workflow("stage2", "smoke", handoff_components=[]))
    model_pt = os.path.join(stage2.parser.get_parsed_content("stage_dir"), "model.pt")
    common = {"meta_file": config("metadata.json"), "config_file": config("inference"), "bundle_root": BUNDLE}
    verify_net_in_out(net_id="network_def", n=4, **common, **SMOKE_NETWORK)
    ts_file = str(tmp_path / "model.ts")
    ckpt_export(
        net_id="network_def", filepath=ts_file, ckpt_file=model_pt, use_trace=True, input_shape=[1, 1, 32, 32, 32],
        **common, **SMOKE_NETWORK,
    )
    scripted = torch.jit.load(ts_file)
    x = torch.rand(1, 1, 32, 32, 32)
    assert scripted(x).shape == x.shape
