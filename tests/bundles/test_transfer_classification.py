"""The classification transfer bundle through ConfigWorkflow: train, evaluate, infer, linear probe, metrics, MONAI Label."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_workflows import REPO_ROOT, run
from ignite.engine import Events
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.transforms import Compose
from test_transfer_segmentation import assert_same_grid, write_oblique_volume, write_stage

BUNDLE = os.path.join(REPO_ROOT, "bundles", "transfer_classification")
CONFIGS = os.path.join(BUNDLE, "configs")
ROI = [16, 16, 16]


def config(name: str) -> str:
    return os.path.join(CONFIGS, f"{name}.yaml" if not name.endswith((".json", ".conf")) else name)


@pytest.fixture
def task(phantom_datalist: str, tmp_path) -> dict:
    """Overrides for the phantom task: is a patch centred on organ or on bone; weights from a stage-1 folder."""
    return {
        "dataset_dir": os.path.dirname(phantom_datalist),
        "datalist": phantom_datalist,
        "label_set": "phantom",
        "val_subjects": ["phantom-002"],
        "class_names": ["organ", "bone"],
        "source_labels": [[1], [2]],
        "pretrained_dir": write_stage(str(tmp_path / "rotation" / "stage1"), decoder=False),
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


def test_train_evaluate_infer(task: dict, tmp_path) -> None:
    run(workflow("smoke", **task))
    report = json.load(open(os.path.join(task["output_dir"], "transfer.json")))
    assert report["init"] == "encoder" and [c["component"] for c in report["components"]] == ["encoder"]
    assert os.path.isfile(os.path.join(task["output_dir"], "model.pt"))

    evaluation = workflow("smoke", "evaluate", eval_dir=str(tmp_path / "eval"), **task)
    evaluation.initialize()
    assert evaluation.check_properties() == []
    evaluator = evaluation.parser.get_parsed_content("validate#evaluator")
    seen: dict[str, list] = {"prob": [], "label": []}

    @evaluator.on(Events.ITERATION_COMPLETED)
    def _collect(engine) -> None:  # the decollated, post-processed items the metrics see
        for item in engine.state.output:
            seen["prob"].append(item["pred"].numpy())
            seen["label"].append(int(item["label"].argmax()))

    evaluation.run()
    evaluation.finalize()
    metrics = evaluator.state.metrics
    prob, label = np.stack(seen["prob"]), np.array(seen["label"])
    assert len(label) == 2 * 2 and set(label) == {0, 1}  # smoke: 2 fixed patches per class of the validation volume
    # balanced accuracy by hand: the mean over classes of the fraction of that class predicted as itself
    predicted = prob.argmax(1)
    by_hand = np.mean([np.mean(predicted[label == c] == c) for c in (0, 1)])
    assert metrics["val_balanced_accuracy"] == pytest.approx(by_hand)
    # binary AUC by hand: the probability that a random class-1 patch scores higher (class 1) than a class-0 one
    pos, neg = prob[label == 1, 1], prob[label == 0, 1]
    auc = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert metrics["val_auc"] == pytest.approx(auc)
    assert os.path.isfile(tmp_path / "eval" / "metrics.csv")

    image = str(tmp_path / "oblique.nii.gz")
    write_oblique_volume(image)
    inference = workflow(
        "inference", workflow_type="infer", image_path=image, roi_size=ROI, prediction_dir=str(tmp_path / "pred"),
        **{k: task[k] for k in ("pretrained_dir", "output_dir", "class_names")},
    )  # fmt: skip
    run(inference)
    output = str(tmp_path / "pred" / "oblique_organs.nii.gz")
    assert_same_grid(output, image)
    assert set(np.unique(np.asarray(nib.load(output).dataobj))) <= {0, 1}


def test_linear_probe_trains_the_head_only(task: dict) -> None:
    wf = workflow("smoke", finetune="linear_probe", **task)
    wf.initialize()
    net = wf.parser.get_parsed_content("network_def")
    encoder = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    head = {k: v.clone() for k, v in net.head.state_dict().items()}
    saved = torch.load(os.path.join(task["pretrained_dir"], "encoder.pt"), weights_only=True)
    assert all(torch.equal(encoder[k], v) for k, v in saved.items())
    wf.run()
    wf.finalize()
    assert all(torch.equal(net.encoder.state_dict()[k], v) for k, v in encoder.items())  # incl. batch-norm statistics
    assert any(not torch.equal(net.head.state_dict()[k], v) for k, v in head.items())
    (group,) = wf.parser.get_parsed_content("optimizer").param_groups
    assert len(group["params"]) == 2  # the linear head's weight and bias


def test_encoder_decoder_init_is_refused(task: dict) -> None:
    with pytest.raises(RuntimeError) as error:
        workflow("smoke", init="encoder+decoder", **task).initialize()
    assert "only the encoder" in str(error.value.__cause__ or error.value)


def test_monai_label_train_and_infer(task: dict, phantom_datalist: str, tmp_path) -> None:
    """MONAI Label's train overrides with a stale longer-run model.pt, then its inference path on one image."""
    run(workflow("smoke", max_epochs=2, **task))
    model_pt = os.path.join(task["output_dir"], "model.pt")
    base = os.path.dirname(phantom_datalist)
    data = [
        {"image": os.path.join(base, e["image"]), "label": os.path.join(base, e["label"])}
        for e in json.load(open(phantom_datalist))["labeled"]
    ]
    handlers = workflow("smoke", **task).parser.get("train#handlers")
    loader = {"_target_": "CheckpointLoader", "load_path": model_pt, "load_dict": {"model": "@network"}, "strict": False}
    overrides = {
        "device": "cpu",
        "train#trainer#max_epochs": 1,
        "train#dataset#data": data[:2],
        "validate#dataset#data": data[2:],
        "train#handlers": [loader] + handlers,
    }
    wf = run(workflow("smoke", **task, **overrides))
    assert wf.parser.get_parsed_content("train#trainer").state.epoch == 1

    parser = ConfigParser()
    parser.read_config(config("inference"))
    parser.update({"bundle_root": BUNDLE, "device": "cpu", "roi_size": ROI, **{k: task[k] for k in ("pretrained_dir", "class_names")}})
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
