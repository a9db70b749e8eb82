"""The TransVW bundle on a discovered phantom dataset: the three stages, its crops, its target and its settings.

The generic suite (test_method_bundles.py) runs every bundle end to end; these tests prove what is TransVW's own: the
training pipeline crops exactly the discovered words, the decoder restores the clean crop, stage 1 and the later
stages corrupt differently, the TransVW losses and schedules, and the check of the dataset against the bundle.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from bundle_workflows import BUNDLES, run
from monai.transforms import Compose

from common.data.errors import DataError
from common.transforms import RandTransVWCorruptiond, RandVisualWordCropd, crop_word
from common.visual_words import TRAIN_KEY, bundle_parser, discover_for_bundle

BUNDLE = os.path.join(BUNDLES, "transvw")
#: resampling on (the phantom is at 3 mm already): the entries' extra keys must pass MONAI's Spacingd
GRID = {"spacing": [3.0, 3.0, 3.0]}


@pytest.fixture(scope="module")
def visual_words(phantom_datalist: str) -> str:
    """The smoke-scale visual-word datalist of the session's phantom dataset (written next to it)."""
    output = os.path.join(os.path.dirname(phantom_datalist), "visual_words_transvw_tests.json")
    return discover_for_bundle(BUNDLE, ["smoke"], phantom_datalist, output, montage_classes=0, progress=False, **GRID)[
        "datalist"
    ]


def _workflow(make_workflow, visual_words: str, *names: str, **overrides):
    """A TransVW workflow on the discovered phantom dataset: train.yaml + ``names`` + smoke.yaml."""
    return make_workflow(*names, "smoke", bundle="transvw", datalist=visual_words, **{**GRID, **overrides})


def _discovered_crops(visual_words: str) -> dict[str, list[tuple[int, torch.Tensor]]]:
    """Every word crop of every training volume (by absolute path), cut by the discovery's own load transforms."""
    data = json.load(open(visual_words))
    roi = data["visual_words_info"]["space"]["roi_size"]
    transforms = Compose(bundle_parser(BUNDLE, ["smoke"], datalist="", **GRID).get_parsed_content("load_transforms"))
    folder = os.path.dirname(visual_words)
    crops = {}
    for entry in data[TRAIN_KEY]:
        path = os.path.normpath(os.path.join(folder, entry["image"]))
        volume = torch.as_tensor(transforms({"image": path})["image"])
        crops[path] = [(w["label"], crop_word(volume, w, roi)) for w in entry["visual_words"]]
    return crops


def _proxy(workflow, name: str):
    return next(t for t in workflow.parser.get_parsed_content("train#preprocessing").transforms if isinstance(t, name))


def test_the_training_pipeline_crops_exactly_the_discovered_words(make_workflow, visual_words: str) -> None:
    workflow = _workflow(make_workflow, visual_words, "stage1", light_rate=0.0, num_samples=6)
    workflow.initialize()
    dataset = workflow.parser.get_parsed_content("train#dataset")
    discovered = _discovered_crops(visual_words)
    assert len(dataset) == len(discovered) == 2
    for index in range(len(dataset)):
        samples, words = dataset[index], discovered[dataset.data[index]["source_image"]]
        assert len(samples) == 6
        for sample in samples:  # each crop is one of the volume's discovered words, with that word's class
            label = int(sample["label"])
            assert any(lab == label and torch.equal(sample["image"], crop) for lab, crop in words), label
            assert torch.equal(sample["target"], sample["image"])  # light_rate 0: stage 1 left the crop as it is


def test_the_decoder_restores_the_clean_crop_from_a_deformed_corrupted_one(make_workflow, visual_words: str) -> None:
    workflow = _workflow(make_workflow, visual_words, "stage2", num_samples=4, handoff_components=[])
    workflow.initialize()
    assert _proxy(workflow, RandTransVWCorruptiond).restorative
    dataset = workflow.parser.get_parsed_content("train#dataset")
    words = _discovered_crops(visual_words)[dataset.data[0]["source_image"]]
    for sample in dataset[0]:
        label = int(sample["label"])
        assert any(lab == label and torch.equal(sample["target"], crop) for lab, crop in words)  # the clean crop
        assert (sample["image"] - sample["target"]).abs().mean() > 1e-3  # the input is deformed and corrupted


def test_three_stages_with_the_transvw_losses_and_both_schedules(make_workflow, visual_words: str) -> None:
    for stage in ("stage1", "stage2", "stage3"):
        workflow = _workflow(make_workflow, visual_words, stage, lr_step_epochs=1)
        run(workflow)
        parse = workflow.parser.get_parsed_content
        assert _proxy(workflow, RandTransVWCorruptiond).restorative == (stage != "stage1")
        assert isinstance(_proxy(workflow, RandVisualWordCropd), RandVisualWordCropd)
        assert isinstance(parse("restoration_loss"), torch.nn.L1Loss) and parse("adversarial_loss").gp_weight == 100.0
        trainer = parse("train#trainer")
        base = 0.01 if stage == "stage1" else 1e-3
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(base / 2)  # halved after the epoch
        if stage == "stage3":  # the critic's learning rate follows its own schedule too
            assert trainer.critic_optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / 2)
            assert trainer.state.metrics["loss_critic"] != 0
        if stage != "stage1":
            assert trainer.state.metrics["loss_res"] > 0
        stage_dir = parse("stage_dir")
        lines = [json.loads(line) for line in open(os.path.join(stage_dir, "metrics.jsonl"))]
        assert any("val_dis_accuracy" in line for line in lines)  # held-out visual-word accuracy, per epoch
        settings = json.load(open(os.path.join(stage_dir, "run.json")))["settings"]
        assert settings["learning_metric"] == "val_dis_accuracy" and settings["learning_chance"] == pytest.approx(0.25)
        assert (parse("network_def").decoder is None) == (stage == "stage1")


def test_a_bundle_whose_grid_or_classes_differ_from_the_dataset_is_stopped(make_workflow, visual_words: str) -> None:
    workflow = _workflow(make_workflow, visual_words, "stage1", num_classes=5, roi_size=[32, 32, 40])
    with pytest.raises(DataError) as error:
        workflow.initialize()
    message = str(error.value)
    assert "num_classes: the dataset has 4 classes, the bundle 5" in message
    assert "roi_size: discovered with [32, 32, 32], the bundle loads with [32, 32, 40]" in message


def test_without_a_discovered_dataset_the_run_names_the_discovery_command(make_workflow) -> None:
    default = "$common.visual_words.require_visual_words(@visual_words_file, @bundle_root)"  # the bundle's own datalist
    workflow = _workflow(make_workflow, default, "stage1", visual_words_name="nowhere")
    with pytest.raises(DataError, match=r"No visual-word dataset at .*nowhere.json.*discover_visual_words.py"):
        workflow.initialize()
