"""Every method bundle end to end through ConfigWorkflow with its smoke overlay (parametrised over bundles/*).

A bundle with a ``method.yaml`` is picked up automatically: stages chained with the strict hand-off, the joint
baseline, resume, the MONAI Label training contract, metadata, inference, ``verify_net_in_out`` and export.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil

import pytest
import torch
from bundle_workflows import BUNDLES, METHOD_BUNDLES, REPO_ROOT, config, run
from monai.bundle import ckpt_export, verify_metadata, verify_net_in_out

SCHEMA = os.path.join(REPO_ROOT, "tools", "schema", "meta_schema_20240725.json")
ALWAYS = {"encoder.pt", "head.pt"}
RESTORING = {"decoder.pt", "model.pt"}


def _exported(stage_dir: str) -> set[str]:
    return {f for f in os.listdir(stage_dir) if f.endswith(".pt") and not f.startswith("checkpoint")}


def _same(state_a: dict, state_b: dict) -> bool:
    return state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a)


@pytest.fixture(params=METHOD_BUNDLES)
def bundle(request) -> str:
    return request.param


def test_three_stages_chain_with_strict_handoff(chained_stages, bundle: str) -> None:
    chain = chained_stages(bundle)
    previous = None
    for stage in ("stage1", "stage2", "stage3"):
        started, stage_dir = chain["started"][stage], chain[stage]
        assert started["decoder"] == (stage != "stage1")  # components exist only where the stage needs them
        assert started["adversary"] == (stage == "stage3")
        if previous is not None:  # the stage started from the previous stage's exported weights
            assert started["handoff"], f"{bundle} {stage} hands nothing off"
            for name, state in started["handoff"].items():
                exported = torch.load(os.path.join(previous, f"{name}.pt"), weights_only=True)
                assert _same(state, exported), f"{bundle} {stage}: {name} not handed off"
        exported = _exported(stage_dir)
        expected = ALWAYS | (RESTORING if stage != "stage1" else set()) | ({"adversary.pt"} if stage == "stage3" else set())
        assert expected <= exported, f"{bundle} {stage} did not export {sorted(expected - exported)}"
        if stage == "stage1":
            assert not exported & (RESTORING | {"adversary.pt"})
        for name in ("checkpoint_final.pt", "components.json", "run.json", "metrics.jsonl", "train.log"):
            assert os.path.isfile(os.path.join(stage_dir, name)), f"{bundle} {stage}: no {name}"
        manifest = json.load(open(os.path.join(stage_dir, "components.json")))
        assert {f"{n}.pt" for n in manifest["components"]} | ({"model.pt"} if "model" in manifest else set()) == exported
        if previous is not None:  # no stage overwrites another's files, and training changed the encoder
            before = torch.load(os.path.join(previous, "encoder.pt"), weights_only=True)
            assert not _same(before, torch.load(os.path.join(stage_dir, "encoder.pt"), weights_only=True))
        previous = stage_dir
    assert sorted(os.listdir(os.path.dirname(previous))) == ["stage1", "stage2", "stage3"]


def test_train_yaml_alone_runs_stage1(make_workflow, bundle: str) -> None:
    workflow = run(make_workflow("smoke", bundle=bundle))
    stage_dir = workflow.parser.get_parsed_content("stage_dir")
    assert stage_dir.endswith("stage1") and ALWAYS <= _exported(stage_dir)


def test_joint_baseline_trains_everything_from_scratch(make_workflow, bundle: str) -> None:
    workflow = run(make_workflow("joint", "smoke", bundle=bundle))
    stage_dir = workflow.parser.get_parsed_content("stage_dir")
    assert os.path.basename(stage_dir) == "joint" and ALWAYS | RESTORING | {"adversary.pt"} <= _exported(stage_dir)
    metrics = workflow.parser.get_parsed_content("train#trainer").state.metrics
    assert metrics["loss_critic"] != 0 and metrics["loss_res"] > 0


def test_missing_previous_stage_names_the_file(make_workflow, bundle: str) -> None:
    workflow = make_workflow("stage2", "smoke", bundle=bundle)
    with pytest.raises(RuntimeError) as error:
        workflow.initialize()
    message = str(error.value.__cause__ or error.value)
    assert "stage1" in message and "encoder.pt" in message and "not found" in message


def test_rerun_resumes_from_the_stage_checkpoint(make_workflow, chained_stages, bundle: str, tmp_path) -> None:
    output_dir = tmp_path / "copy"
    shutil.copytree(chained_stages(bundle)["stage1"], output_dir / "stage1")
    iterations = json.load(open(output_dir / "stage1" / "run.json"))["completed"]["iteration"]
    second = run(make_workflow("stage1", "smoke", bundle=bundle, max_epochs=2, output_dir=str(output_dir)))
    state = second.parser.get_parsed_content("train#trainer").state
    assert (state.epoch, state.iteration) == (2, 2 * iterations)  # continued, not restarted


def test_monai_label_training_overrides(make_workflow, chained_stages, bundle: str, bundle_datalist, tmp_path) -> None:
    """MONAI Label trains with labelled data, a validation split and a CheckpointLoader at handler index 0."""
    model_pt = os.path.join(chained_stages(bundle)["stage2"], "model.pt")
    labeled = json.load(open(bundle_datalist(bundle)))["labeled"]
    base = os.path.dirname(bundle_datalist(bundle))
    data = [{"image": os.path.join(base, d["image"]), "label": os.path.join(base, d["label"])} for d in labeled]
    handlers = make_workflow("stage2", "smoke", bundle=bundle).parser.get("train#handlers")
    loader = {"_target_": "CheckpointLoader", "load_path": model_pt, "load_dict": {"model": "@network"}, "strict": False}
    overrides = {
        "train#trainer#max_epochs": 1, "train#dataset#data": data[:2], "validate#dataset#data": data[2:],
        "train#handlers": [loader] + handlers, "device": "cpu", "handoff_components": [],
        "output_dir": str(tmp_path / "monailabel"),
    }  # fmt: skip
    workflow = run(make_workflow("stage2", "smoke", bundle=bundle, **overrides))
    assert workflow.parser.get_parsed_content("train#trainer").state.iteration > 0


def test_metadata_validates_offline_and_required_files_exist(bundle: str) -> None:
    verify_metadata(meta_file=config("metadata.json", bundle), filepath=SCHEMA)  # raises on any schema violation
    for path in ("configs/metadata.json", "configs/inference.yaml", "configs/train.yaml", "configs/logging.conf",
                 "configs/multi_gpu_train.yaml", "docs/README.md", "LICENSE", "method.yaml"):  # fmt: skip
        assert os.path.isfile(os.path.join(BUNDLES, bundle, path)), path


def _n_for(metadata_file: str, roi_size: list[int]) -> int:
    """The ``n`` of the metadata's ``"k*n"`` spatial shape that gives the smoke cube's first size."""
    shape = json.load(open(metadata_file))["network_data_format"]["inputs"]["image"]["spatial_shape"][0]
    factor = int(re.fullmatch(r"(\d+)\*n", str(shape)).group(1))
    return roi_size[0] // factor


def test_inference_serves_model_pt(make_workflow, chained_stages, bundle: str, tmp_path) -> None:
    ckpt_dir = chained_stages(bundle)["stage2"]
    infer = make_workflow(
        "inference", "smoke", workflow_type="infer", bundle=bundle, ckpt_dir=ckpt_dir, prediction_dir=str(tmp_path / "pred")
    )
    run(infer)
    network = infer.parser.get_parsed_content("network_def")
    assert _same(network.state_dict(), torch.load(os.path.join(ckpt_dir, "model.pt"), weights_only=True))
    outputs = sorted(glob.glob(str(tmp_path / "pred" / "*_reconstruction.nii.gz")))
    assert len(outputs) == len(infer.parser.get_parsed_content("dataset#data")) > 0


def test_verify_net_in_out_and_export(make_workflow, chained_stages, bundle: str, tmp_path) -> None:
    model_pt = os.path.join(chained_stages(bundle)["stage2"], "model.pt")
    smoke = make_workflow("smoke", bundle=bundle)
    roi_size = smoke.parser.get_parsed_content("roi_size")
    args = {
        "meta_file": config("metadata.json", bundle),
        "config_file": [config("inference", bundle), config("smoke", bundle)],
        "bundle_root": os.path.join(BUNDLES, bundle),
    }
    verify_net_in_out(net_id="network_def", n=_n_for(args["meta_file"], roi_size), **args)
    ts_file = str(tmp_path / "model.ts")
    ckpt_export(net_id="network_def", filepath=ts_file, ckpt_file=model_pt, use_trace=True, input_shape=[1, 1, *roi_size], **args)
    x = torch.rand(1, 1, *roi_size)
    assert torch.jit.load(ts_file)(x).shape == x.shape
