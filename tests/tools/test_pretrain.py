"""tools/pretrain.py chains the stages in one process; the README's `monai.bundle run` command works as written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))

import pretrain  # noqa: E402

from common.data import write_phantom_dataset  # noqa: E402

BUNDLE = os.path.join(REPO_ROOT, "bundles", "rotation")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_phantom_dataset(str(tmp_path_factory.mktemp("phantom")), num_volumes=2, shape=(40, 40, 36))


def test_pretrain_chains_three_stages(phantom: str, tmp_path, capsys) -> None:
    out = str(tmp_path / "runs")
    folders = pretrain.pretrain(BUNDLE, overlays="smoke", datalist=phantom, dataset_dir=os.path.dirname(phantom), output_dir=out)
    assert list(folders) == ["stage1", "stage2", "stage3"]
    assert os.path.isfile(os.path.join(out, "stage3", "adversary.pt"))
    printed = capsys.readouterr().out
    assert "Exported weights:" in printed and os.path.join(out, "stage3") in printed
    # continuing from an existing stage 1 with another overlay list works too
    assert list(pretrain.pretrain(BUNDLE, overlays=["smoke"], stages="2", datalist=phantom, output_dir=out)) == ["stage2"]
    joint = pretrain.pretrain(BUNDLE, overlays="smoke", joint=True, datalist=phantom, output_dir=out)
    assert joint == {"joint": os.path.join(out, "joint")} and os.path.isfile(os.path.join(out, "joint", "adversary.pt"))


def test_pretrain_rejects_unknown_overlays_and_bundles(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nosuch"):
        pretrain.stage_config_files(BUNDLE, "stage1", ["nosuch"])
    with pytest.raises(FileNotFoundError, match="train.yaml"):
        pretrain.stage_config_files(str(tmp_path), "stage1")


def test_monai_bundle_run_command_line(phantom: str, tmp_path) -> None:
    """The README command, as a subprocess from the repository root (about 5 s of start-up)."""
    configs = os.path.join("bundles", "rotation", "configs")
    command = [
        sys.executable, "-m", "monai.bundle", "run",
        "--config_file", f"['{configs}/train.yaml','{configs}/stage1.yaml','{configs}/smoke.yaml']",
        "--bundle_root", "bundles/rotation",
        "--datalist", phantom, "--dataset_dir", os.path.dirname(phantom), "--output_dir", str(tmp_path / "cli"),
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, encoding="utf-8", errors="replace", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert os.path.isfile(tmp_path / "cli" / "stage1" / "encoder.pt")
    assert "stage hand-off" not in result.stdout  # stage 1 loads nothing
