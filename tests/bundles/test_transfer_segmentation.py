"""The segmentation transfer bundle through ConfigWorkflow: train, evaluate, infer, initialisations, MONAI Label.

Pretrained weights come from a stage folder written here the way a method bundle exports them (``encoder.pt``,
``decoder.pt``, ``run.json``), and once from real Rotation smoke stages.
"""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_workflows import REPO_ROOT, run
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.transforms import Compose

from common.data.phantom import make_ct_phantom
from common.networks import GenesisDecoder, GenesisEncoder

BUNDLE = os.path.join(REPO_ROOT, "bundles", "transfer_segmentation")
CONFIGS = os.path.join(BUNDLE, "configs")
ROTATION = os.path.join(REPO_ROOT, "bundles", "rotation")
WIDTH, LEVELS = 2, 3


def config(name: str) -> str:
    return os.path.join(CONFIGS, f"{name}.yaml" if not name.endswith((".json", ".conf")) else name)


def write_stage(folder: str, decoder: bool = True) -> str:
    """A stage folder as a method bundle exports it: encoder.pt (+ decoder.pt) and run.json (width 2, 3 levels)."""
    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(1234)  # not the bundle's seed: a fresh network must differ from the exported one
    torch.save(GenesisEncoder(3, 1, WIDTH, LEVELS).state_dict(), os.path.join(folder, "encoder.pt"))
    if decoder:
        torch.save(GenesisDecoder(3, 1, WIDTH, LEVELS, upsample="nearest").state_dict(), os.path.join(folder, "decoder.pt"))
    settings = {"spatial_dims": 3, "base_channels": WIDTH, "num_levels": LEVELS, "upsample": "nearest",
                "intensity_preset": "ct", "orientation": "RAS", "spacing": None, "roi_size": [32, 32, 32]}  # fmt: skip
    with open(os.path.join(folder, "run.json"), "w", encoding="utf-8") as f:
        json.dump({"bundle": "rotation", "stage": 2 if decoder else 1, "settings": settings}, f)
    return folder


@pytest.fixture
def stage_dir(tmp_path) -> str:
    return write_stage(str(tmp_path / "rotation" / "stage2"))


@pytest.fixture
def task(phantom_datalist: str, stage_dir: str, tmp_path) -> dict:
    """Overrides for the phantom task: organ and bone, validated on the third phantom, weights from ``stage_dir``."""
    return {
        "dataset_dir": os.path.dirname(phantom_datalist),
        "datalist": phantom_datalist,
        "label_set": "phantom",
        "val_subjects": ["phantom-002"],
        "class_names": ["organ", "bone"],
        "source_labels": [[1], [2]],
        "pretrained_dir": stage_dir,
        "output_dir": str(tmp_path / "models"),
    }


def workflow(*names: str, workflow_type: str = "train", **overrides) -> ConfigWorkflow:
    files = [config("train")] + [config(n) for n in names] if workflow_type == "train" else [config(n) for n in names]
    return ConfigWorkflow(
        config_file=files,
        meta_file=config("metadata.json"),
        logging_file=config("logging.conf"),
        workflow_type=workflow_type,
        bundle_root=BUNDLE,
        **overrides,
    )


def write_oblique_volume(path: str) -> np.ndarray:
    """A CT phantom on a grid that is not RAS, not isotropic and has odd sizes; returns its affine."""
    image = make_ct_phantom((37, 44, 30), seed=5)
    affine = np.array([[0.0, -2.5, 0.0, 40.0], [3.0, 0.0, 0.0, -20.0], [0.0, 0.0, -3.5, 60.0], [0.0, 0.0, 0.0, 1.0]])
    nib.save(nib.Nifti1Image(image, affine), path)
    return affine


def assert_same_grid(output: str, reference: str) -> None:
    out, ref = nib.load(output), nib.load(reference)
    assert out.shape[:3] == ref.shape[:3], f"{out.shape} vs {ref.shape}"
    np.testing.assert_allclose(out.affine, ref.affine, atol=1e-4)


def test_train_evaluate_infer_from_encoder_and_decoder(task: dict, stage_dir: str, tmp_path) -> None:
    train = run(workflow("smoke", **task))
    models = task["output_dir"]
    assert os.path.isfile(os.path.join(models, "model.pt"))
    report = json.load(open(os.path.join(models, "transfer.json")))
    assert report["init"] == "encoder+decoder" and report["stage"] == 2
    encoder, decoder = report["components"]
    assert encoder["loaded"] == encoder["total"] == len(torch.load(os.path.join(stage_dir, "encoder.pt")))
    assert decoder["reinitialised"] == ["out.conv.bias", "out.conv.weight"]
    assert train.parser.get_parsed_content("train#trainer").state.iteration == 2
    # the served weights are those of this network (3 classes)
    served = torch.load(os.path.join(models, "model.pt"), weights_only=True)
    assert served["decoder.out.conv.weight"].shape[0] == 3

    evaluation = run(workflow("smoke", "evaluate", eval_dir=str(tmp_path / "eval"), **task))
    metrics = evaluation.parser.get_parsed_content("validate#evaluator").state.metrics
    assert 0.0 <= metrics["val_mean_dice"] <= 1.0 and "val_hd95" in metrics
    assert os.path.isfile(tmp_path / "eval" / "metrics.csv")

    image = str(tmp_path / "oblique.nii.gz")
    write_oblique_volume(image)
    inference = workflow(
        "inference", workflow_type="infer", image_path=image, roi_size=[32, 32, 32], prediction_dir=str(tmp_path / "pred"),
        **{k: task[k] for k in ("pretrained_dir", "output_dir", "class_names")},
    )  # fmt: skip
    run(inference)
    output = str(tmp_path / "pred" / "oblique_seg.nii.gz")
    assert_same_grid(output, image)
    assert set(np.unique(np.asarray(nib.load(output).dataobj))) <= {0, 1, 2}


def test_initialisations_load_what_they_say(task: dict, stage_dir: str) -> None:
    saved = {name: torch.load(os.path.join(stage_dir, f"{name}.pt"), weights_only=True) for name in ("encoder", "decoder")}

    def initialised(**overrides) -> torch.nn.Module:
        wf = workflow("smoke", **{**task, **overrides})
        wf.initialize()
        return wf.parser.get_parsed_content("network_def")

    def matches(module: torch.nn.Module, state: dict) -> bool:
        own = module.state_dict()
        return all(torch.equal(own[k], v) for k, v in state.items() if own[k].shape == v.shape)

    encoder_only = initialised(init="encoder")
    assert matches(encoder_only.encoder, saved["encoder"]) and not matches(encoder_only.decoder, saved["decoder"])
    both = initialised()
    assert matches(both.encoder, saved["encoder"]) and matches(both.decoder, saved["decoder"])
    scratch = initialised(init="random", pretrained_dir="", network_settings={"base_channels": WIDTH, "num_levels": LEVELS})
    assert not matches(scratch.encoder, saved["encoder"])


def test_layerwise_finetuning_builds_decaying_rates(task: dict) -> None:
    wf = workflow("smoke", finetune="layerwise", layer_decay=0.5, learning_rate=0.1, **task)
    run(wf)
    rates = sorted({group["lr"] for group in wf.parser.get_parsed_content("optimizer").param_groups}, reverse=True)
    assert rates == pytest.approx([0.1 * 0.5**d for d in range(6)])  # new output layer + 5 pretrained blocks


def test_four_channel_input_from_ct_weights(task: dict, tmp_path) -> None:
    wf = workflow("smoke", in_channels=4, **task)
    wf.initialize()
    report = json.load(open(os.path.join(task["output_dir"], "transfer.json")))
    assert report["components"][0]["adapted"] == ["levels.0.0.conv.weight"]
    net = wf.parser.get_parsed_content("network_def")
    assert net(torch.zeros(1, 4, 32, 32, 32)).shape == (1, 3, 32, 32, 32)


def test_missing_decoder_and_mismatched_width_are_named(task: dict, tmp_path) -> None:
    stage1 = write_stage(str(tmp_path / "rotation" / "stage1"), decoder=False)
    with pytest.raises(RuntimeError) as error:
        workflow("smoke", **{**task, "pretrained_dir": stage1}).initialize()
    assert "decoder.pt not found" in str(error.value.__cause__ or error.value)
    with pytest.raises(RuntimeError) as error:
        workflow("smoke", network_settings={"base_channels": 4}, **task).initialize()
    message = str(error.value.__cause__ or error.value)
    assert "encoder.pt" in message and "levels.0.0.conv.weight" in message


def _labeled(phantom_datalist: str) -> list[dict]:
    base = os.path.dirname(phantom_datalist)
    return [
        {"image": os.path.join(base, e["image"]), "label": os.path.join(base, e["label"])}
        for e in json.load(open(phantom_datalist))["labeled"]
    ]


def test_monai_label_train_and_infer(task: dict, phantom_datalist: str, tmp_path) -> None:
    """MONAI Label's overrides: datastore pairs, a validation split, its CheckpointLoader at handler index 0 on a
    stale models/model.pt from a longer run, fewer epochs; then its inference path (network_def + model.pt, the
    preprocessing, inferer and postprocessing ids without SaveImaged) on one image."""
    run(workflow("smoke", max_epochs=2, **task))  # the stale checkpoint: 2 epochs
    model_pt = os.path.join(task["output_dir"], "model.pt")
    data = _labeled(phantom_datalist)
    handlers = workflow("smoke", **task).parser.get("train#handlers")
    loader = {"_target_": "CheckpointLoader", "load_path": model_pt, "load_dict": {"model": "@network"}, "strict": False}
    overrides = {
        "device": "cpu",  # bundle_root too: workflow() sets it
        "train#trainer#max_epochs": 1,
        "train#dataset#data": data[:2],
        "validate#dataset#data": data[2:],
        "train#handlers": [loader] + handlers,
    }
    wf = run(workflow("smoke", **task, **overrides))
    assert wf.parser.get_parsed_content("train#trainer").state.epoch == 1

    # inference as MONAI Label's BundleInferTask does it
    parser = ConfigParser()
    parser.read_config(config("inference"))
    parser.update({"bundle_root": BUNDLE, "device": "cpu", "roi_size": [32, 32, 32], **{k: task[k] for k in ("pretrained_dir", "class_names")}})
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(model_pt, weights_only=True), strict=False)
    network.eval()
    pre = parser.get_parsed_content("preprocessing")
    post = [t for t in parser.get_parsed_content("postprocessing").transforms if type(t).__name__ != "SaveImaged"]
    image = str(tmp_path / "oblique.nii.gz")
    write_oblique_volume(image)
    item = pre({"image": image})
    with torch.no_grad():
        item["pred"] = parser.get_parsed_content("inferer")(item["image"][None], network)[0]
    item = Compose(post)(item)
    assert tuple(item["pred"].shape[1:]) == nib.load(image).shape
    # MONAI Label names the labels from the first output's channel_def
    labels = json.load(open(config("metadata.json")))["network_data_format"]["outputs"]["pred"]["channel_def"]
    assert labels == {"0": "background", "1": "liver"}


def test_from_real_rotation_stages(phantom_datalist: str, task: dict, tmp_path) -> None:
    """Rotation smoke stages 1 and 2 pretrain on the phantoms; the transfer bundle fine-tunes from their export."""
    pretrain = os.path.join(tmp_path, "rotation_run")
    rotation = os.path.join(ROTATION, "configs")
    for stage in ("stage1", "stage2"):
        run(
            ConfigWorkflow(
                config_file=[os.path.join(rotation, f) for f in ("train.yaml", f"{stage}.yaml", "smoke.yaml")],
                meta_file=os.path.join(rotation, "metadata.json"),
                logging_file=os.path.join(rotation, "logging.conf"),
                workflow_type="train",
                bundle_root=ROTATION,
                dataset_dir=os.path.dirname(phantom_datalist),
                datalist=phantom_datalist,
                output_dir=pretrain,
            )
        )
    stage2 = os.path.join(pretrain, "stage2")
    wf = run(workflow("smoke", finetune="layerwise", **{**task, "pretrained_dir": stage2}))
    report = wf.parser.get_parsed_content("transfer_report")
    assert [c.component for c in report.components] == ["encoder", "decoder"] and report.stage == 2
    assert wf.parser.get_parsed_content("network_def").encoder.base_channels == 4  # the smoke pretraining's width


@pytest.mark.parametrize("bundle", ["transfer_segmentation", "transfer_classification"])
def test_metadata_and_network_shape_checks(bundle: str) -> None:
    """The model-zoo checks: metadata valid against the 20240725 schema; network_def maps the metadata's input to its output."""
    from monai.bundle import verify_metadata, verify_net_in_out

    configs = os.path.join(REPO_ROOT, "bundles", bundle, "configs")
    verify_metadata(meta_file=os.path.join(configs, "metadata.json"),
                    filepath=os.path.join(REPO_ROOT, "tools", "schema", "meta_schema_20240725.json"))  # fmt: skip
    verify_net_in_out(
        net_id="network_def", meta_file=os.path.join(configs, "metadata.json"), config_file=os.path.join(configs, "inference.yaml"),
        bundle_root=os.path.join(REPO_ROOT, "bundles", bundle), init="random", pretrained_dir="", network_settings={"base_channels": 2},
    )  # fmt: skip


def test_own_datalist_without_subjects_or_label_sets(task: dict, phantom_datalist: str, tmp_path) -> None:
    """A user's datalist: plain pairs under 'training' and 'validation'; no label set or subject filter."""
    pairs = _labeled(phantom_datalist)
    own = tmp_path / "own.json"
    own.write_text(json.dumps({"training": pairs[:2], "validation": pairs[2:]}), encoding="utf-8")
    overrides = {**task, "datalist": str(own), "train_key": "training", "val_key": "validation", "label_set": None, "val_subjects": None}
    wf = workflow("smoke", **overrides)
    wf.initialize()
    assert [e["image"] for e in wf.parser.get_parsed_content("train#dataset#data")] == [p["image"] for p in pairs[:2]]
    assert [e["image"] for e in wf.parser.get_parsed_content("validate#dataset#data")] == [pairs[2]["image"]]
    no_validation = workflow("smoke", **{**overrides, "val_subjects": []})
    no_validation.initialize()
    assert no_validation.parser.get_parsed_content("validate#dataset#data") == []
