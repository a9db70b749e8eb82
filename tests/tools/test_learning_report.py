"""tools/learning_report.py: the pretext metric against chance and the restoration loss per stage, from metrics.jsonl."""

from __future__ import annotations

import json
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))

import learning_report  # noqa: E402


def _stage(folder, stage, accuracies, restoration=None, chance=0.25, bundle="rotation") -> str:
    """A stage folder as a method bundle writes it: run.json and one metrics.jsonl line per epoch and split."""
    os.makedirs(folder, exist_ok=True)
    settings = {"learning_metric": "val_dis_accuracy", "learning_chance": chance, "num_classes": 4}
    with open(os.path.join(folder, "run.json"), "w") as f:
        json.dump({"bundle": bundle, "stage": stage, "settings": settings}, f)
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        for epoch, accuracy in enumerate(accuracies, start=1):
            train = {"epoch": epoch, "iteration": 2 * epoch, "split": "train", "dis_accuracy": min(1.0, accuracy + 0.2)}
            val = {"epoch": epoch, "split": "validation", "val_dis_accuracy": accuracy}
            if restoration:
                train["loss_res"] = restoration[epoch - 1] * 1.1
                val["val_loss_res"] = restoration[epoch - 1]
            f.write(json.dumps(train) + "\n" + json.dumps(val) + "\n")
    return str(folder)


def test_report_of_a_learning_and_a_flat_stage(tmp_path) -> None:
    run = tmp_path / "rotation"
    _stage(run / "stage1", 1, [0.25, 0.3, 0.4, 0.6, 0.7, 0.7])
    _stage(run / "stage2", 2, [0.26, 0.25, 0.24, 0.25, 0.26, 0.25], restoration=[0.08, 0.05, 0.03, 0.02, 0.02, 0.01])
    paths = learning_report.learning_report(str(run), out_dir=str(tmp_path / "out"))
    table = open(paths["md"]).read().splitlines()
    assert table[2].startswith("| rotation/stage1 | 6 | val_dis_accuracy (validation) | 0.317 | 0.667 | 0.700 | 0.250 | above chance |")
    assert table[3].startswith("| rotation/stage2 | 6 | val_dis_accuracy (validation) | 0.250 | 0.253 | 0.260 | 0.250 | at chance |")
    assert table[3].endswith("| 0.053 → 0.017 |")  # means of the first and last three validations
    with open(paths["png"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_stage_folders_accepts_runs_and_stage_folders(tmp_path) -> None:
    a = _stage(tmp_path / "a" / "stage1", 1, [0.3])
    b = _stage(tmp_path / "b" / "joint", "joint", [0.3], bundle="jigsaw")
    models = _stage(tmp_path / "bundles" / "jigsaw" / "models" / "joint", "joint", [0.3], bundle="jigsaw")
    found = learning_report.stage_folders([a, str(tmp_path / "b"), str(tmp_path / "bundles" / "jigsaw" / "models")])
    assert found == {"a/stage1": a, "b/joint": b, "jigsaw/joint": models}
    twice = learning_report.stage_folders([str(tmp_path / "b"), str(tmp_path / "b")])
    assert list(twice) == ["b/joint", "b-2/joint"]
    with pytest.raises(FileNotFoundError, match="no stage folder"):
        learning_report.stage_folders([str(tmp_path / "empty")])
