"""StageGuard: a stage folder is new, resumed, done, or refused when it holds another run (the differences named)."""

from __future__ import annotations

import json
import os

import pytest

from common.handlers import RUN_RECORD, StageFolderError, StageGuard, data_fingerprint, save_checkpoint

SETTINGS = {"learning_rate": 1e-4, "roi_size": [32, 32, 32], "max_epochs": 2, "seed": 0}


@pytest.fixture
def volumes(tmp_path) -> list[dict]:
    paths = []
    for i in range(2):
        path = tmp_path / f"v{i}.nii.gz"
        path.write_bytes(b"x" * (10 + i))
        paths.append({"image": str(path)})
    return paths


def _finished_run(stage_dir, guard: StageGuard, epoch: int, max_epochs: int) -> None:
    os.makedirs(stage_dir, exist_ok=True)
    save_checkpoint({}, os.path.join(stage_dir, "checkpoint_final.pt"))
    record = {"fingerprint": guard.fingerprint, "completed": {"epoch": epoch, "max_epochs": max_epochs, "early_stopped": epoch < max_epochs}}
    json.dump(record, open(os.path.join(stage_dir, RUN_RECORD), "w"))


def test_new_resume_and_done(tmp_path, volumes) -> None:
    stage_dir = str(tmp_path / "stage1")
    guard = StageGuard(stage_dir, SETTINGS, volumes, max_epochs=2)
    assert guard.check() == "new" and guard.needs_training
    _finished_run(stage_dir, guard, epoch=2, max_epochs=2)
    same = StageGuard(stage_dir, SETTINGS, volumes, max_epochs=2)
    assert same.check() == "done" and not same.needs_training
    more = StageGuard(stage_dir, {**SETTINGS, "max_epochs": 5, "num_workers": 3}, volumes, max_epochs=5)
    assert more.check() == "resume"  # max_epochs and num_workers may change between a run and its resumption


def test_an_early_stopped_stage_is_done_whatever_max_epochs(tmp_path, volumes) -> None:
    stage_dir = str(tmp_path / "stage1")
    _finished_run(stage_dir, StageGuard(stage_dir, SETTINGS, volumes, 10), epoch=4, max_epochs=10)
    assert StageGuard(stage_dir, SETTINGS, volumes, max_epochs=50).check() == "done"


def test_other_settings_or_data_are_refused_with_the_differences_named(tmp_path, volumes) -> None:
    stage_dir = str(tmp_path / "stage1")
    _finished_run(stage_dir, StageGuard(stage_dir, SETTINGS, volumes, 2), epoch=1, max_epochs=2)
    with pytest.raises(StageFolderError, match=r"learning_rate: 0.0001 -> 0.001") as error:
        StageGuard(stage_dir, {**SETTINGS, "learning_rate": 1e-3}, volumes, 2).check()
    assert "--overwrite" in str(error.value) and error.value.code != 0
    with pytest.raises(StageFolderError, match=r"training data: 2 volumes -> 1 volumes"):
        StageGuard(stage_dir, SETTINGS, volumes[:1], 2).check()
    os.truncate(volumes[0]["image"], 3)  # same paths, other contents
    with pytest.raises(StageFolderError, match="training data"):
        StageGuard(stage_dir, SETTINGS, volumes, 2).check()


def test_overwrite_removes_only_what_a_stage_writes(tmp_path, volumes) -> None:
    stage_dir = tmp_path / "stage1"
    _finished_run(str(stage_dir), StageGuard(str(stage_dir), SETTINGS, volumes, 2), epoch=2, max_epochs=2)
    for name in ("encoder.pt", "metrics.jsonl", "events.out.tfevents.1.host", "notes.txt"):
        (stage_dir / name).write_text("x")
    guard = StageGuard(str(stage_dir), {**SETTINGS, "learning_rate": 1.0}, volumes, 2, overwrite=True)
    assert guard.check() == "new"
    assert os.listdir(stage_dir) == ["notes.txt"]


def test_needs_training_before_check_is_a_programming_error(tmp_path, volumes) -> None:
    with pytest.raises(RuntimeError, match="check"):
        StageGuard(str(tmp_path), SETTINGS, volumes, 2).needs_training


def test_data_fingerprint_follows_files_not_names_order(volumes) -> None:
    assert data_fingerprint(volumes) == data_fingerprint(list(reversed(volumes)))
    assert data_fingerprint(volumes)["hash"] != data_fingerprint(volumes[:1])["hash"]
