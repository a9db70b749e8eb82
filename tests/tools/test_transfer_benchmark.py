"""tools/transfer_benchmark.py at smoke scale on phantoms: leak-free splits, every run in the CSV, tables and plots,
resuming; and its pieces (which initialisations, which overrides fit a bundle)."""

from __future__ import annotations

import csv
import json
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))

import transfer_benchmark as tb  # noqa: E402

from common.data import load_datalist, write_phantom_dataset  # noqa: E402

ROTATION = os.path.join(REPO_ROOT, "bundles", "rotation")


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_phantom_dataset(str(tmp_path_factory.mktemp("phantoms")), num_volumes=3, shape=(48, 48, 40))


def test_subjects_follow_the_datalist_roles(phantoms: str) -> None:
    train, test, others = tb._subjects(phantoms, "phantom")
    assert (train["subject"], test["subject"], [o["subject"] for o in others]) == ("phantom-000", "phantom-002", ["phantom-001"])
    assert os.path.isabs(train["image"]) and os.path.isfile(test["label"])


def test_overrides_apply_where_the_bundle_has_the_id() -> None:
    from pretrain import stage_config_files

    files = stage_config_files(ROTATION, "stage1", ["smoke"])
    kept = tb.bundle_overrides(ROTATION, files, {"rotation_group": "c4", "roi_size": [32, 32, 8], "jigsaw_grid": 3})
    assert kept == {"rotation_group": "c4", "roi_size": [32, 32, 8]}


def test_initialisations(tmp_path) -> None:
    s1, s2 = tmp_path / "stage1", tmp_path / "stage2"
    s1.mkdir()
    s2.mkdir()
    (s2 / "decoder.pt").write_bytes(b"")
    ref = {"bundle": ROTATION, "settings": {"base_channels": 8}, "bundles": {"rotation": ROTATION}}
    stages = {"rotation": {"stage1": str(s1), "stage2": str(s2)}}
    seg = {i["name"]: i["mode"] for i in tb.initialisations("segmentation", stages, ref)}
    assert seg == {"random": "random", "rotation/stage1": "encoder", "rotation/stage2": "encoder+decoder"}
    cls = {i["name"]: i["mode"] for i in tb.initialisations("classification", stages, ref)}
    assert cls == {"random": "random", "rotation/stage1": "encoder", "rotation/stage2": "encoder"}
    assert tb.initialisations("classification", stages, ref)[0]["settings"] == {"base_channels": 8}  # same network


def test_smoke_benchmark(phantoms: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative results folder, as the docs' command gives it
    out = str(tmp_path / "results")
    kwargs = dict(scale="smoke", profile="phantom", datalist=phantoms, results_dir="results", fractions="1.0", seeds=2)
    paths = tb.benchmark(**kwargs)

    # no voxel of the test subject in pretraining; the held-out region of the other subject does not overlap
    splits = json.load(open(os.path.join(out, "data", "splits.json")))
    assert splits["test_subject"] == "phantom-002"
    pretraining = load_datalist(splits["pretraining_datalist"], "unlabeled") + load_datalist(splits["pretraining_datalist"], "validation")
    assert not any("phantom_002" in e["image"] for e in pretraining)
    (region,) = splits["pretraining_regions"].values()  # three adjacent, disjoint slice ranges
    assert region["inferior"][1] == region["validation"][0] and region["validation"][1] == region["superior"][0]
    assert region["inferior"][0] == 0 and region["validation"][0] < region["validation"][1]
    # every run is in the CSV: 3 initialisations x 1 fraction x 2 seeds x 2 tasks
    rows = list(csv.DictReader(open(paths["runs"])))
    assert len(rows) == 12
    assert {r["init"] for r in rows} == {"random", "rotation/stage1", "rotation/stage2"}
    seg = [r for r in rows if r["task"] == "organ_segmentation"]
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in seg)
    assert {r["init_mode"] for r in seg} == {"random", "encoder", "encoder+decoder"}
    assert all(0.0 <= float(r["auc"]) <= 1.0 for r in rows if r["task"] == "organ_classification")
    results = open(paths["results"]).read()
    assert "**organ_segmentation: Dice**" in results and "**organ_classification: AUC**" in results
    assert "| rotation/stage1 |" in results and "What pretraining learned" in results
    assert sorted(os.listdir(paths["plots"])) == [
        "organ_classification_auc.png", "organ_classification_balanced_accuracy.png",
        "organ_segmentation_dice.png", "organ_segmentation_hd95_mm.png",
    ]  # fmt: skip
    assert os.path.isfile(os.path.join(out, "learning", "learning.png"))
    # a second call resumes: nothing is run again
    tb.benchmark(**kwargs)
    assert len(list(csv.DictReader(open(paths["runs"])))) == 12
