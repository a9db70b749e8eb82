"""Tests of common.data.sample_data: preparation, idempotence and failures on a fake archive, and the real cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from common.data import sample_data, sdist
from common.data.atomic import PARTIAL_PREFIX
from common.data.datalist import DATALIST_KEYS, load_datalist

# importing ITK's SWIG bindings emits these on Python 3.11+
pytestmark = pytest.mark.filterwarnings("ignore:builtin type [Ss]wig:DeprecationWarning")


def _partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(PARTIAL_PREFIX)] if folder.exists() else []


def _voxels(path: str) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


def test_prepare_builds_relative_datalist(fake_pip, fake_sdist, tmp_path):
    cache = tmp_path / "cache"
    path = sample_data.prepare_sample_data(cache_dir=str(cache))
    assert path == str(cache / "datalist.json") and len(fake_pip) == 1
    data = json.loads(Path(path).read_text())
    for key in (*DATALIST_KEYS, "name", "description", "modality", "sources", "tool_version"):
        assert key in data, key
    assert data["sources"][0]["license"] == fake_sdist.license
    assert "model" in data["sources"][0]["note"].lower()
    for key in DATALIST_KEYS:
        for entry in data[key]:
            assert not Path(entry["image"]).is_absolute()
            assert set(entry["source"]) >= {"package", "version", "license", "member"}
            assert entry["source"]["license"] == fake_sdist.license
    unlabeled = {e["subject"] for e in data["unlabeled"]}
    assert unlabeled.isdisjoint(e["subject"] for e in data["validation"])
    assert all("Model-made" in e["label_note"] and e["num_classes"] >= 2 for e in data["labeled"])
    # paths resolve against the datalist's folder, through MONAI
    for entry in load_datalist(path, "labeled"):
        assert Path(entry["image"]).is_file() and Path(entry["label"]).is_file()
    assert _partial_files(cache) == []


def test_prepare_fixes_grids_and_converts_dicom(fake_pip, fake_sdist, tmp_path):
    path = sample_data.prepare_sample_data(cache_dir=str(tmp_path))
    by_image = {Path(e["image"]).name: e for e in load_datalist(path, "labeled")}
    arrays, affines = fake_sdist.arrays, fake_sdist.affines

    crop = by_image["ct_abdomen_pelvis_crop.nii.gz"]
    assert np.allclose(nib.load(crop["image"]).affine, affines["ct_a_crop_fixed"])
    assert np.allclose(nib.load(crop["label"]).affine, affines["ct_a_crop_fixed"])
    np.testing.assert_array_equal(_voxels(crop["image"]), arrays["ct_a_crop"])

    aorta = by_image["ct_chest_angio.nii.gz"]
    expected = np.zeros(arrays["ct_b"].shape, np.uint8)
    expected[3:13, 2:11, 0:8] = arrays["seg_b_crop"]
    np.testing.assert_array_equal(_voxels(aorta["label"]), expected)

    dicom = by_image["ct_upper_abdomen.nii.gz"]
    image = nib.load(dicom["image"])
    assert np.allclose(image.affine, affines["ct_c"], atol=1e-4)
    np.testing.assert_array_equal(_voxels(dicom["image"]), arrays["ct_c"])
    np.testing.assert_array_equal(_voxels(dicom["label"]), arrays["seg_c"])


def test_second_run_does_nothing_and_force_rebuilds(fake_pip, tmp_path, caplog):
    first = sample_data.prepare_sample_data(cache_dir=str(tmp_path))
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    with caplog.at_level("INFO", logger="common.data.sample_data"):
        second = sample_data.prepare_sample_data(cache_dir=str(tmp_path))
    assert second == first and len(fake_pip) == 1
    assert "nothing to do" in caplog.text
    assert stamps == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    sample_data.prepare_sample_data(cache_dir=str(tmp_path), force=True)
    assert len(fake_pip) == 2


def test_missing_file_or_old_version_rebuilds(fake_pip, tmp_path):
    path = Path(sample_data.prepare_sample_data(cache_dir=str(tmp_path)))
    (tmp_path / sample_data.OUTPUTS["ct_b"]).unlink()
    sample_data.prepare_sample_data(cache_dir=str(tmp_path))
    assert len(fake_pip) == 2 and (tmp_path / sample_data.OUTPUTS["ct_b"]).is_file()
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "tool_version": "0.1"}))
    sample_data.prepare_sample_data(cache_dir=str(tmp_path))
    assert len(fake_pip) == 3 and json.loads(path.read_text())["tool_version"] == sample_data.TOOL_VERSION


def test_user_files_are_kept_and_foreign_datalist_refused(fake_pip, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    sample_data.prepare_sample_data(cache_dir=str(tmp_path), force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    other = tmp_path / "other"
    other.mkdir()
    (other / "datalist.json").write_text('{"name": "my-dataset", "training": []}')
    with pytest.raises(FileExistsError, match="my-dataset|not written by this tool"):
        sample_data.prepare_sample_data(cache_dir=str(other))
    assert json.loads((other / "datalist.json").read_text())["name"] == "my-dataset"


def test_unreachable_registry_error_names_command_and_offline_options(monkeypatch, tmp_path):
    script = "import sys; sys.stderr.write('ERROR: No matching distribution found\\n'); sys.exit(1)"
    failing = [sys.executable, "-c", script]
    monkeypatch.setattr(sdist, "pip_download_command", lambda dest: failing)
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError) as info:
        sample_data.prepare_sample_data(cache_dir=str(cache))
    message = str(info.value)
    assert "No matching distribution found" in message and "exited with code 1" in message
    assert sys.executable in message
    assert sample_data.ENV_VAR in message and "--cache_dir" in message and "--sdist" in message
    assert not (cache / "datalist.json").exists() and _partial_files(cache) == []


def test_failure_midway_leaves_no_datalist(fake_pip, monkeypatch, tmp_path):
    def broken(folder, out_path):
        raise RuntimeError("decoder missing")

    monkeypatch.setattr(sample_data, "dicom_series_to_nifti", broken)
    with pytest.raises(RuntimeError, match="decoder missing"):
        sample_data.prepare_sample_data(cache_dir=str(tmp_path))
    assert not (tmp_path / "datalist.json").exists() and _partial_files(tmp_path) == []


def test_checksum_mismatch_is_refused(fake_sdist, tmp_path):
    with pytest.raises(RuntimeError, match="SHA-256"):
        sample_data.prepare_sample_data(cache_dir=str(tmp_path), sdist=str(fake_sdist.path))
    assert not (tmp_path / "datalist.json").exists()


def test_summary_has_one_line_per_file(fake_pip, tmp_path):
    path = sample_data.prepare_sample_data(cache_dir=str(tmp_path))
    lines = sample_data.summarize_datalist(path)
    assert len(lines) == len(sample_data.datalist_paths(json.loads(Path(path).read_text())))
    assert any("ct_upper_abdomen.nii.gz" in ln and "4" in ln and "validation" in ln for ln in lines)


@pytest.mark.real_data
def test_real_sample_data_loads_with_monai():
    """Loads every entry of the real cache with MONAI; checks shapes, HU range and label grids."""
    from monai.transforms import LoadImaged

    datalist = Path(sample_data.default_cache_dir()) / sample_data.DATALIST_NAME
    if not datalist.is_file():
        pytest.skip(f"real sample data not prepared: {datalist} missing (run `python tools/sample_data.py`)")
    data = json.loads(datalist.read_text())
    load_image = LoadImaged(keys=["image"], ensure_channel_first=True)
    for key in ("unlabeled", "validation", "unlabeled_mr"):
        for entry in load_datalist(datalist, key):
            image = load_image(entry)["image"]
            header = nib.load(entry["image"])
            assert tuple(image.shape) == (1, *header.shape[:3]), entry["image"]
            assert np.isfinite(image.numpy()).all()
            if data["modality"][key] == "CT":
                low, high = float(image.min()), float(image.max())
                assert -2048 <= low <= -900 and 1000 <= high <= 4095, (entry["image"], low, high)
                assert float(np.median(image.numpy())) < 100
    load_pair = LoadImaged(keys=["image", "label"], ensure_channel_first=True)
    for key in ("labeled", "labeled_mr"):
        for entry in load_datalist(datalist, key):
            pair = load_pair(entry)
            image, label = pair["image"], pair["label"]
            assert image.shape == label.shape, entry["label"]
            assert np.allclose(image.affine.numpy(), label.affine.numpy(), atol=1e-3), entry["label"]
            values = np.unique(label.numpy())
            assert np.array_equal(values, np.round(values)) and values.min() == 0 and values.max() > 0
            assert values.max() < entry["num_classes"]
    subjects = {e["subject"] for e in data["unlabeled"]}
    assert subjects.isdisjoint(e["subject"] for e in data["validation"])
