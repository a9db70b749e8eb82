"""tools/plot_run.py draws the losses, the learning curve and the restorations of a real (smoke) run."""

from __future__ import annotations

import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))

import plot_run  # noqa: E402
import pretrain  # noqa: E402

from common.data import write_phantom_dataset  # noqa: E402


def test_plots_of_a_two_stage_run(tmp_path, capsys) -> None:
    datalist = write_phantom_dataset(str(tmp_path / "data"), num_volumes=3, shape=(40, 40, 36))
    run_dir = str(tmp_path / "run")
    pretrain.pretrain(os.path.join(REPO_ROOT, "bundles", "rotation"), overlays="smoke", stages="1,2", datalist=datalist,
                      dataset_dir=os.path.dirname(datalist), output_dir=run_dir)  # fmt: skip
    out = capsys.readouterr().out
    assert "What each stage learned" in out and "Plots:" in out  # the README job ends with both
    for name in ("losses.png", "learning.png", "restorations.png"):
        path = os.path.join(run_dir, "plots", name)
        assert os.path.getsize(path) > 5000, name
    assert plot_run.stage_dirs(run_dir) == [os.path.join(run_dir, "stage1"), os.path.join(run_dir, "stage2")]


def test_a_folder_without_stages_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        plot_run.plot_run(str(tmp_path))
