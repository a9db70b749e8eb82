"""refs.yaml with two different method bundles: stages 1, 2 and 3 chained through ConfigWorkflow (smoke + refs).

Rotation (single-view classification) runs with the cosine penalty; MoCo (two views, a key encoder and a queue handed
from stage to stage as task state) runs with the penalty and the PCGrad projection. Each stage must log the ReFs
diagnostics, export the reference head beside the method's unchanged components, and stage 3 must start from stage
2's reference head.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch
from monai.bundle import ConfigWorkflow

from common.data import write_phantom_dataset
from common.handlers.stage_guard import StageFolderError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLES = os.path.join(REPO_ROOT, "bundles")
sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))

import generate_bundles as gen  # noqa: E402


@pytest.fixture(scope="module")
def datalist(tmp_path_factory) -> str:
    return write_phantom_dataset(str(tmp_path_factory.mktemp("refs_phantom")), num_volumes=3, shape=(48, 48, 40))


def _run(bundle: str, stage: str, datalist: str, output_dir: str, **overrides: object) -> str:
    configs = os.path.join(BUNDLES, bundle, "configs")
    workflow = ConfigWorkflow(
        config_file=[os.path.join(configs, f"{n}.yaml") for n in ("train", stage, "smoke", "refs")],
        meta_file=os.path.join(configs, "metadata.json"),
        logging_file=os.path.join(configs, "logging.conf"),
        workflow_type="train",
        bundle_root=os.path.join(BUNDLES, bundle),
        dataset_dir=os.path.dirname(datalist),
        datalist=datalist,
        output_dir=output_dir,
        **overrides,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow.parser.get_parsed_content("stage_dir")


def _metrics(stage_dir: str, split: str) -> dict:
    lines = [json.loads(line) for line in open(os.path.join(stage_dir, "metrics.jsonl"))]
    return [m for m in lines if m["split"] == split][-1]


@pytest.mark.parametrize(
    ("bundle", "overrides"),
    [("rotation", {}), ("moco", {"refs_projection": True, "refs_penalty_weight": 0.2})],
)
def test_refs_overlay_runs_the_three_stages_of_two_methods(bundle: str, overrides: dict, datalist: str, tmp_path) -> None:
    output_dir = str(tmp_path / "out")
    penalty_weight = overrides.get("refs_penalty_weight", 0.1)
    for stage in ("stage1", "stage2", "stage3"):
        stage_dir = _run(bundle, stage, datalist, output_dir, **overrides)
        train = _metrics(stage_dir, "train")
        assert -1.0 <= train["refs_cosine"] <= 1.0
        # epoch means of lambda * (1 - cos) and of cos: the penalty is really lambda * (1 - cos)
        assert train["refs_penalty"] == pytest.approx(penalty_weight * (1 - train["refs_cosine"]), abs=1e-5)
        assert 0.0 <= train["refs_conflict"] <= 1.0 and train["loss_ref"] > 0
        if not overrides.get("refs_projection"):
            assert train["refs_correction_norm"] == 0.0
        assert train["loss"] == pytest.approx(train["loss_ssl"] + train["loss_ref"] + train["refs_penalty"], rel=1e-4)
        assert not any(k.startswith("val_refs") for k in _metrics(stage_dir, "validation"))  # validation: the method's loss
        files = set(os.listdir(stage_dir))
        assert {"encoder.pt", "head.pt", "reference_head.pt"} <= files
        encoder = torch.load(os.path.join(stage_dir, "encoder.pt"), weights_only=True)
        assert not any(k.startswith(("model.", "reference_head")) for k in encoder)  # a plain encoder state dict
        head = torch.load(os.path.join(stage_dir, "reference_head.pt"), weights_only=True)
        assert head["conv.conv.weight"].shape[0] == 3  # the phantom's background, organ and bone
        settings = json.load(open(os.path.join(stage_dir, "run.json")))["settings"]
        assert settings["refs_projection"] == bool(overrides.get("refs_projection", False))
    assert "model.pt" in files and "adversary.pt" in files
    log = open(os.path.join(stage_dir, "train.log")).read()
    assert "loaded reference_head" in log and "stage2/reference_head.pt" in log


def test_a_plain_stage_folder_is_not_resumed_with_refs(datalist: str, tmp_path) -> None:
    output_dir = str(tmp_path / "out")
    configs = os.path.join(BUNDLES, "rotation", "configs")
    plain = ConfigWorkflow(
        config_file=[os.path.join(configs, f"{n}.yaml") for n in ("train", "stage1", "smoke")],
        meta_file=os.path.join(configs, "metadata.json"), logging_file=os.path.join(configs, "logging.conf"),
        workflow_type="train", bundle_root=os.path.join(BUNDLES, "rotation"),
        dataset_dir=os.path.dirname(datalist), datalist=datalist, output_dir=output_dir,
    )  # fmt: skip
    plain.initialize()
    plain.run()
    plain.finalize()
    with pytest.raises(StageFolderError) as raised:
        _run("rotation", "stage1", datalist, output_dir, max_epochs=2)
    assert "refs_weight: <absent> -> 1.0" in str(raised.value)


def test_every_3d_method_bundle_gets_refs_yaml_and_2d_bundles_do_not() -> None:
    for bundle in gen.method_bundles():
        files = gen.render_bundle(bundle)
        dims = gen.spatial_dims(files["configs/train.yaml"].split("\n", 3)[3])
        assert ("configs/refs.yaml" in files) == (dims == 3), bundle
    assert gen.spatial_dims("spatial_dims: 2\n") == 2 and gen.spatial_dims("spatial_dims: '$2'\n") is None
