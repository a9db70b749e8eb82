"""tools/check_data.py: one line per problem, exit status 1 on errors, a traceback only with --debug."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.data.datalist import DATALIST_KEYS, write_datalist
from common.data.nifti_io import save_nifti
from common.data.phantom import make_ct_phantom
from common.data.stats_cache import CACHE_ENV

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "check_data.py"


@pytest.fixture(autouse=True)
def _stats_cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "stats_cache"))


def _tool():
    spec = importlib.util.spec_from_file_location("united_ssl_tool_check_data", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _datalist(folder: Path, unlabeled: list[str], validation: list[str] | None = None, **extra) -> Path:
    data = {key: [] for key in DATALIST_KEYS}
    data["unlabeled"] = [{"image": p} for p in unlabeled]
    if validation is not None:
        data["validation"] = [{"image": p} for p in validation]
    data.update(extra)
    return Path(write_datalist(data, folder / "datalist.json"))


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "UNITED_SSL_DEBUG")}
    return subprocess.run(
        [sys.executable, "tools/check_data.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip


def test_clean_datalist_exits_0_and_warns_about_small_volumes(tmp_path, capsys):
    for i in range(2):
        save_nifti(make_ct_phantom((24, 24, 16), seed=i), np.eye(4), tmp_path / f"ct{i}.nii.gz")
    path = _datalist(tmp_path, ["ct0.nii.gz"], ["ct1.nii.gz"])
    _tool().main(str(path), roi_size=[16, 16, 16])
    assert capsys.readouterr().out.splitlines() == ["Data check: 2 volumes (0 from the cache), 0 errors, 0 warnings."]
    _tool().main(str(path), roi_size=[32, 32, 32])
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "Data check: 2 volumes (2 from the cache), 0 errors, 2 warnings."
    assert out[0] == (
        f"warning: {tmp_path / 'ct0.nii.gz'}: is 24x24x16 voxels (RAS), smaller than roi_size 32x32x32: padded with "
        f"background to 32x32x32"
    )


def test_errors_exit_1_with_one_line_each_and_the_recorded_preset_is_used(tmp_path):
    ct = make_ct_phantom((24, 24, 16))
    low, high = np.percentile(ct, [0.5, 99.5])
    save_nifti(ct, np.eye(4), tmp_path / "ct.nii.gz")
    raw = (tmp_path / "ct.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(raw[: len(raw) // 2])
    path = _datalist(tmp_path, ["ct.nii.gz", "cut.nii.gz", "gone.nii.gz"], intensity_preset="mri")
    proc = _run(str(path))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout.splitlines() == [
        f"error: {tmp_path / 'cut.nii.gz'}: image cannot be read: EOFError: Compressed file ended before the "
        f"end-of-stream marker was reached",
        f"error: {tmp_path / 'gone.nii.gz'}: image file not found",
        f"warning: {tmp_path / 'ct.nii.gz'}: intensities [{low:.4g}, {high:.4g}] (0.5th-99.5th percentile) look like CT in HU; "
        f"the 'mri' preset rescales each volume by its own percentiles and drops the HU scale; use intensity_preset 'ct'",
        "warning: validation: no validation volumes: validation and early stopping are off",
        "Data check: 1 volume (0 from the cache), 2 errors, 2 warnings.",
    ]
    debug = _run(str(path), "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "EOFError" in debug.stderr
    assert "DataCheckFailed" in debug.stderr


def test_typo_in_the_datalist_path_exits_1_naming_the_file(tmp_path):
    proc = _run(str(tmp_path / "datalsit.json"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        f"Datalist file not found: {tmp_path / 'datalsit.json'}. Check the path given as datalist, or write a datalist "
        f"for a folder of volumes with `python tools/make_datalist.py FOLDER`."
    )


def test_folder_argument_and_label_key(tmp_path, capsys):
    image = make_ct_phantom((24, 24, 16))
    save_nifti(image, np.eye(4), tmp_path / "ct.nii.gz")
    save_nifti((image > 0).astype(np.uint8), np.eye(4), tmp_path / "ct_seg.nii.gz")
    _tool().main(str(tmp_path))  # no datalist.json: a scan, which skips the label map
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "warning: validation: no validation volumes: validation and early stopping are off",
        "Data check: 1 volume (0 from the cache), 0 errors, 1 warning.",
    ]
    save_nifti((image > 0).astype(np.uint8)[:, :, :8], np.eye(4), tmp_path / "short_seg.nii.gz")
    data = {key: [] for key in DATALIST_KEYS}
    data["unlabeled"] = [{"image": "ct.nii.gz"}]
    data["labeled"] = [{"image": "ct.nii.gz", "label": "ct_seg.nii.gz"}, {"image": "ct.nii.gz", "label": "short_seg.nii.gz"}]
    write_datalist(data, tmp_path / "datalist.json")
    with pytest.raises(SystemExit) as info:
        _tool().main(str(tmp_path / "datalist.json"), key="labeled", label_key="label")
    assert info.value.code == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"error: {tmp_path / 'short_seg.nii.gz'}: label map is not on the grid")
    assert json.loads((tmp_path / "datalist.json").read_text())["labeled"][0]["label"] == "ct_seg.nii.gz"
