"""tools/make_datalist.py: a nested folder with a DICOM series, pairs, duplicates and an unreadable file."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.data.datalist import datalist_preset, load_datalist, resolve_training_data
from common.data.nifti_io import save_nifti
from common.data.phantom import make_ct_phantom
from common.data.stats_cache import CACHE_ENV

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "make_datalist.py"
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


@pytest.fixture(autouse=True)
def _stats_cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "stats_cache"))


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _folder(root: Path, broken: bool = True) -> Path:
    """site_a/case1.nii.gz + site_a/case1_seg.nii.gz, site_b/series (DICOM), mr/t1.nii.gz, a copy, a truncated file."""
    write_dicom_series = _load("united_ssl_data_conftest", REPO / "tests" / "data" / "conftest.py").write_dicom_series
    ct = make_ct_phantom((24, 24, 16), seed=1)
    save_nifti(ct, AFFINE, root / "site_a" / "case1.nii.gz")
    save_nifti((ct > 300).astype(np.uint8), AFFINE, root / "site_a" / "case1_seg.nii.gz")
    write_dicom_series(root / "site_b" / "series", make_ct_phantom((20, 18, 8), seed=2).T, (0.8, 0.8, 2.0), (0, 0, 0))
    save_nifti(make_ct_phantom((20, 20, 12), seed=3), AFFINE, root / "site_b" / "case2.nii.gz")
    rng = np.random.default_rng(0)
    save_nifti(rng.uniform(50.0, 900.0, (20, 20, 12)).astype(np.float32), AFFINE, root / "mr" / "t1.nii.gz")
    save_nifti(ct, AFFINE, root / "site_c" / "case1_again.nii")
    if broken:
        raw = (root / "site_a" / "case1.nii.gz").read_bytes()
        (root / "site_c" / "cut.nii.gz").write_bytes(raw[: len(raw) // 2])
    return root


def test_unreadable_file_stops_before_writing_unless_skipped(tmp_path, capsys):
    root = _folder(tmp_path / "data")
    tool = _load("united_ssl_tool_make_datalist", TOOL)
    with pytest.raises(SystemExit) as info:
        tool.main(str(root))
    assert str(info.value.code).startswith("error: 1 unreadable file(s) (listed above); nothing written.")
    out = capsys.readouterr().out
    assert "site_c/cut.nii.gz" in out and "UNREADABLE" in out and not (root / "datalist.json").exists()

    tool.main(str(root), skip_unreadable=True, validation_fraction=0.34, seed=3)
    out = capsys.readouterr().out
    data = json.loads((root / "datalist.json").read_text())
    assert data["intensity_preset"] == "ct" and datalist_preset(str(root / "datalist.json"), "mri") == "ct"
    ct = {"site_a/case1.nii.gz", "site_b/series", "site_b/case2.nii.gz"}
    assert {e["image"] for e in data["unlabeled"] + data["validation"]} == ct and len(data["validation"]) == 1
    assert data["unlabeled_mr"] == [{"image": "mr/t1.nii.gz"}]
    assert [(e["image"], e["label"]) for e in data["labeled"]] == [("site_a/case1.nii.gz", "site_a/case1_seg.nii.gz")]
    assert [item["path"] for item in data["left_out"]] == ["site_c/case1_again.nii", "site_c/cut.nii.gz"]
    assert "Datalist written: " in out and f"Use it with: --dataset_dir {root}" in out
    for row in ("site_b/series", "site_a/case1_seg.nii.gz", "mr/t1.nii.gz", "site_c/case1_again.nii"):
        assert any(line.startswith(row + " ") for line in out.splitlines()), row
    # bundles with datalist: auto and --dataset_dir pick it up; its images resolve
    entries = resolve_training_data(root, "auto", "unlabeled")
    assert {Path(e["image"]).relative_to(root).as_posix() for e in entries} <= ct and all(
        os.path.exists(e["image"]) for e in entries
    )

    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        tool.main(str(root), skip_unreadable=True)
    tool.main(str(root), skip_unreadable=True, overwrite=True, validation_fraction=0.0, output=str(tmp_path / "o.json"))
    other = load_datalist(tmp_path / "o.json", "unlabeled")
    assert len(other) == 3 and all(os.path.exists(e["image"]) for e in other)


def test_missing_folder_and_folder_without_volumes(tmp_path):
    tool = _load("united_ssl_tool_make_datalist", TOOL)
    with pytest.raises(SystemExit, match=f"error: {tmp_path / 'nope'}: folder not found"):
        tool.main(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no volumes found"):
        tool.main(str(tmp_path / "empty"))


def test_exit_codes_from_the_command_line(tmp_path):
    root = _folder(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "tools/make_datalist.py", str(root), *args], cwd=REPO, env=env, capture_output=True,
            text=True, timeout=300, check=False,
        )  # fmt: skip

    failed = run()
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "error: 1 unreadable file(s)" in failed.stderr and not (root / "datalist.json").exists()
    done = run("--skip_unreadable")
    assert done.returncode == 0, done.stderr
    assert json.loads((root / "datalist.json").read_text())["intensity_preset"] == "ct"
