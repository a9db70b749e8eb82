"""Reliability end to end: exact and crash-safe resume, NaN stopped with the term named, stale stage folders refused.

The rotation bundle stands for every bundle here: all of this lives in the shared trainer, handlers and template.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_workflows import BUNDLE, REPO_ROOT, config, run
from ignite.engine import Events

from common.data import write_phantom_dataset
from common.handlers import StageFolderError

HERE = os.path.dirname(os.path.abspath(__file__))
EXPORTS = ("encoder.pt", "head.pt", "decoder.pt", "model.pt")


def _exports(stage_dir: str) -> dict[str, dict]:
    return {f: torch.load(os.path.join(stage_dir, f), weights_only=True) for f in EXPORTS}


def _identical(a: dict, b: dict) -> bool:
    return all(a[f].keys() == b[f].keys() and all(torch.equal(a[f][k], b[f][k]) for k in a[f]) for f in a)


def test_a_crashed_and_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(make_workflow, tmp_path) -> None:
    common = {"handoff_components": [], "max_epochs": 3, "num_samples": 2}
    straight = run(make_workflow("stage2", "smoke", output_dir=str(tmp_path / "straight"), **common))

    crashing = make_workflow("stage2", "smoke", output_dir=str(tmp_path / "crashed"), **common)
    crashing.initialize()

    def crash(engine) -> None:
        raise RuntimeError("simulated crash")

    crashing.parser.get_parsed_content("train#trainer").add_event_handler(Events.ITERATION_COMPLETED(once=5), crash)
    with pytest.raises(RuntimeError):
        crashing.run()
    resumed = run(make_workflow("stage2", "smoke", output_dir=str(tmp_path / "crashed"), **common))
    assert resumed.parser.get_parsed_content("train#trainer").state.iteration == 6
    a, b = (_exports(w.parser.get_parsed_content("stage_dir")) for w in (straight, resumed))
    assert _identical(a, b), "the resumed run's weights differ from the uninterrupted run's"


def _bundle_run(phantom_datalist: str, output_dir: str, tmp_path, kill: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m monai.bundle run`` stage 1 for 4 epochs of 2 iterations, optionally with the kill switch."""
    files = [config("train"), config("stage1"), config("smoke")]
    if kill is not None:
        overlay = tmp_path / "kill.yaml"
        args = "".join(f"\n    {k}: {v}" for k, v in kill.items())
        overlay.write_text(f'"+train#handlers":\n  - _target_: kill_switch.KillSwitch{args}\n', encoding="utf-8")
        files.append(str(overlay))
    cmd = [
        sys.executable, "-m", "monai.bundle", "run", "--config_file", repr(files), "--meta_file", config("metadata.json"),
        "--logging_file", config("logging.conf"), "--bundle_root", BUNDLE, "--dataset_dir", os.path.dirname(phantom_datalist),
        "--datalist", phantom_datalist, "--output_dir", output_dir, "--max_epochs", "4",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH")) if p))
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300)


@pytest.mark.parametrize("kill", [{"iteration": 5}, {"save_epoch": 3}], ids=["mid_epoch", "mid_save"])
def test_sigkill_then_the_same_command_resumes(phantom_datalist: str, tmp_path, kill: dict) -> None:
    output_dir = str(tmp_path / "models")
    killed = _bundle_run(phantom_datalist, output_dir, tmp_path, kill)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    stage_dir = os.path.join(output_dir, "stage1")
    assert os.path.isfile(os.path.join(stage_dir, "checkpoint_epoch=2.pt"))  # the last good checkpoint survived
    again = _bundle_run(phantom_datalist, output_dir, tmp_path)
    log = again.stdout + again.stderr
    assert again.returncode == 0, log[-3000:]
    assert "resumed this stage from" in log and "checkpoint_epoch=2.pt" in log
    final = torch.load(os.path.join(stage_dir, "checkpoint_final.pt"), weights_only=True)
    assert (final["trainer"]["iteration"], final["trainer"]["epoch_length"]) == (8, 2)  # 4 epochs of 2 iterations
    assert not [f for f in os.listdir(stage_dir) if f.startswith(".partial-")]


@pytest.fixture
def nan_datalist(tmp_path) -> str:
    datalist = write_phantom_dataset(str(tmp_path / "nan"), num_volumes=3, shape=(48, 48, 40))
    path = os.path.join(os.path.dirname(datalist), json.load(open(datalist))["unlabeled"][0]["image"])
    volume = nib.load(path)
    data = volume.get_fdata().astype(np.float32)
    data.flat[np.random.default_rng(0).choice(data.size, data.size // 100, replace=False)] = np.nan
    nib.save(nib.Nifti1Image(data, volume.affine), path)
    return datalist


def test_nan_voxels_stop_the_run_before_anything_is_written(make_workflow, nan_datalist: str, tmp_path) -> None:
    output_dir = tmp_path / "out"
    workflow = make_workflow("stage1", "smoke", datalist=nan_datalist, output_dir=str(output_dir))
    with pytest.raises(SystemExit) as error:
        workflow.initialize()
    assert "phantom_000.nii.gz" in str(error.value) and "NaN" in str(error.value)
    assert not output_dir.exists()


def test_a_nan_loss_stops_training_naming_the_term_and_exports_nothing(make_workflow, nan_datalist: str, tmp_path) -> None:
    workflow = make_workflow("stage2", "smoke", datalist=nan_datalist, data_check=None, handoff_components=[])
    workflow.initialize()
    with pytest.raises(RuntimeError) as error:
        workflow.run()
    message = str(error.value.__cause__ or error.value)
    assert "non-finite loss at epoch 1, iteration 1" in message and "loss_res = nan" in message
    stage_dir = workflow.parser.get_parsed_content("stage_dir")
    assert not os.path.exists(os.path.join(stage_dir, "encoder.pt"))


def test_a_finished_stage_is_done_other_data_is_refused_and_overwrite_starts_over(make_workflow, tmp_path) -> None:
    first = run(make_workflow("stage1", "smoke"))
    stage_dir = first.parser.get_parsed_content("stage_dir")
    encoder = open(os.path.join(stage_dir, "encoder.pt"), "rb").read()

    again = run(make_workflow("stage1", "smoke"))  # same data, same settings: done, nothing trained or rewritten
    assert again.parser.get_parsed_content("stage_guard").status == "done"
    assert again.parser.get_parsed_content("train#trainer").state.iteration == 0
    assert open(os.path.join(stage_dir, "encoder.pt"), "rb").read() == encoder

    other = write_phantom_dataset(str(tmp_path / "other"), num_volumes=3, shape=(40, 40, 40), seed=5)
    with pytest.raises(StageFolderError, match="training data") as error:
        make_workflow("stage1", "smoke", datalist=other, dataset_dir=os.path.dirname(other)).initialize()
    assert "--overwrite" in str(error.value)
    with pytest.raises(StageFolderError, match="learning_rate"):
        make_workflow("stage1", "smoke", learning_rate=0.5).initialize()

    fresh = run(make_workflow("stage1", "smoke", datalist=other, dataset_dir=os.path.dirname(other), overwrite=True))
    state = fresh.parser.get_parsed_content("train#trainer").state
    assert (state.epoch, state.iteration) == (1, 2)  # started over on the new data
    record = json.load(open(os.path.join(stage_dir, "run.json")))
    assert record["fingerprint"]["data"]["entries"] == 2 and record["completed"]["epoch"] == 1
