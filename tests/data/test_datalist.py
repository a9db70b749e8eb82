"""Tests of common.data.datalist: loading with clear errors, folder scans, training data resolution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from common.data import atomic
from common.data import datalist as dl
from common.data import sample_data
from common.data.errors import DataError
from common.data.nifti_io import save_nifti
from common.data.phantom import make_ct_phantom


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _dicom_bytes() -> bytes:
    return b"\0" * 128 + b"DICM" + b"\0" * 16


def test_relative_paths_resolve_against_datalist_folder(tmp_path):
    folder = tmp_path / "data"
    _touch(folder / "images" / "a.nii.gz")
    path = _write(folder / "datalist.json", {"unlabeled": [{"image": "images/a.nii.gz", "source": {"member": "x"}}]})
    entries = dl.load_datalist(str(path), "unlabeled")
    assert entries == [{"image": str(folder / "images" / "a.nii.gz"), "source": {"member": "x"}}]
    other = dl.load_datalist(path, "unlabeled", base_dir=str(tmp_path / "elsewhere"))
    assert other[0]["image"] == str(tmp_path / "elsewhere" / "images" / "a.nii.gz")


def test_labels_resolve_too(tmp_path):
    path = _write(tmp_path / "d.json", {"labeled": [{"image": "i.nii.gz", "label": "l.nii.gz", "num_classes": 2}]})
    entry = dl.load_datalist(path, "labeled")[0]
    assert entry["label"] == str(tmp_path / "l.nii.gz") and entry["num_classes"] == 2


def test_missing_file_names_path_and_never_suggests_the_sample_data_there(tmp_path):
    missing = tmp_path / "nope" / "datalist.json"
    with pytest.raises(FileNotFoundError) as info:
        dl.load_datalist(missing, "unlabeled")
    message = str(info.value)
    assert str(missing) in message and "tools/make_datalist.py" in message and "sample_data" not in message


def test_missing_default_cache_points_at_tool(monkeypatch, tmp_path):
    monkeypatch.setenv(sample_data.ENV_VAR, str(tmp_path / "cache"))
    default = Path(sample_data.default_cache_dir()) / sample_data.DATALIST_NAME
    with pytest.raises(FileNotFoundError, match="default sample CT cache.*python tools/sample_data.py"):
        dl.load_datalist(default, "unlabeled")


def test_missing_key_names_file_key_and_available_keys(tmp_path):
    path = _write(tmp_path / "d.json", {"name": "x", "unlabeled": [{"image": "a.nii"}], "labeled": []})
    with pytest.raises(KeyError) as info:
        dl.load_datalist(path, "training")
    message = str(info.value)
    assert str(path) in message and "'training'" in message and "unlabeled" in message and "labeled" in message


def test_empty_list_names_file_and_key(tmp_path):
    path = _write(tmp_path / "d.json", {"unlabeled_mr": []})
    with pytest.raises(ValueError, match=r"d\.json.*'unlabeled_mr'.*empty"):
        dl.load_datalist(path, "unlabeled_mr")


def test_bad_json_and_bad_entries_are_named(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json.*not valid JSON"):
        dl.load_datalist(bad, "unlabeled")
    path = _write(tmp_path / "d.json", {"unlabeled": [{"label": "l.nii"}], "validation": "a.nii"})
    with pytest.raises(ValueError, match="have no 'image'"):
        dl.load_datalist(path, "unlabeled")
    with pytest.raises(ValueError, match="'validation' must hold a list"):
        dl.load_datalist(path, "validation")


def test_folder_scan_finds_volumes_and_dicom_series(tmp_path):
    for name in ("b.nii.gz", "a.nii", "sub/c.NRRD", "sub/d.mha", "e.mhd", "notes.txt", "e.raw", ".hidden.nii.gz"):
        _touch(tmp_path / name)
    for i in range(3):
        _touch(tmp_path / "series1" / f"IM{i}.dcm")
        _touch(tmp_path / "series2" / f"CT.1.2.{i}", _dicom_bytes())
    _touch(tmp_path / "not_dicom" / "readme.md", b"hello")
    entries = dl.datalist_from_folder(str(tmp_path))
    names = [Path(e["image"]).relative_to(tmp_path).as_posix() for e in entries]
    assert names == ["a.nii", "b.nii.gz", "e.mhd", "series1", "series2", "sub/c.NRRD", "sub/d.mha"]
    assert all(Path(e["image"]).is_absolute() for e in entries)
    assert [Path(e["image"]).name for e in dl.datalist_from_folder(tmp_path, extensions=(".mha",))] == [
        "series1", "series2", "d.mha"
    ]


def test_folder_scan_of_a_series_folder_itself(tmp_path):
    for i in range(2):
        _touch(tmp_path / f"slice{i}.dcm")
    assert dl.datalist_from_folder(tmp_path) == [{"image": str(tmp_path.resolve())}]


def test_folder_scan_errors_name_folder(tmp_path):
    _touch(tmp_path / "readme.txt")
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        dl.datalist_from_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="Data folder not found"):
        dl.datalist_from_folder(tmp_path / "missing")
    with pytest.raises(NotADirectoryError):
        dl.datalist_from_folder(tmp_path / "readme.txt")


def test_resolve_training_data_prefers_datalist(tmp_path):
    _touch(tmp_path / "scan" / "x.nii.gz")
    path = _write(tmp_path / "d.json", {"unlabeled": [{"image": "listed.nii.gz"}]})
    assert dl.resolve_training_data(tmp_path / "scan", str(path), "unlabeled") == [
        {"image": str(tmp_path / "listed.nii.gz")}
    ]
    scanned = [{"image": str((tmp_path / "scan" / "x.nii.gz").resolve())}]
    assert dl.resolve_training_data(tmp_path / "scan", None, "unlabeled") == scanned
    assert dl.resolve_training_data(tmp_path / "scan", "", "unlabeled") == scanned


def test_an_explicit_datalist_that_does_not_exist_is_an_error_not_a_fallback(tmp_path, caplog):
    _touch(tmp_path / "x.nii.gz")  # a scan would find this
    typo = tmp_path / "datalsit.json"
    with pytest.raises(DataError) as info:
        dl.resolve_training_data(tmp_path, str(typo), "unlabeled")
    assert isinstance(info.value, SystemExit)
    assert str(info.value) == (
        f"Datalist file not found: {typo}. Check the path given as datalist, or write a datalist for a folder of "
        f"volumes with `python tools/make_datalist.py FOLDER`."
    )
    with pytest.raises(DataError, match="datalsit.json"):
        dl.resolve_training_data(tmp_path, str(typo), "validation", required=False)
    with pytest.raises(FileNotFoundError, match="datalsit.json"):
        dl.resolve_training_data(tmp_path, str(typo), "unlabeled", debug=True)
    with pytest.raises(DataError, match=f"datalist must be a JSON file, got a folder: {tmp_path}"):
        dl.resolve_training_data(tmp_path, str(tmp_path), "unlabeled")


def test_auto_uses_the_folder_datalist_else_scans(tmp_path):
    _touch(tmp_path / "scan" / "x.nii.gz")
    assert [Path(e["image"]).name for e in dl.resolve_training_data(tmp_path / "scan", "auto", "unlabeled")] == [
        "x.nii.gz"
    ]
    assert dl.resolve_training_data(tmp_path / "scan", dl.AUTO, "validation", required=False) == []
    _write(tmp_path / "scan" / "datalist.json", {"unlabeled": [{"image": "listed.nii.gz"}]})
    assert dl.resolve_training_data(tmp_path / "scan", "AUTO", "unlabeled") == [
        {"image": str(tmp_path / "scan" / "listed.nii.gz")}
    ]
    assert dl.resolve_training_data(tmp_path / "scan", "auto", "validation", required=False) == []
    with pytest.raises(DataError, match=r"has no key 'validation'; keys holding lists: \['unlabeled'\]"):
        dl.resolve_training_data(tmp_path / "scan", "auto", "validation")


def test_missing_dataset_dir_is_an_error_and_only_the_default_cache_points_at_the_sample_tool(tmp_path, monkeypatch):
    mine = tmp_path / "my_ct"
    with pytest.raises(DataError) as info:
        dl.resolve_training_data(mine, "auto", "unlabeled")
    assert str(info.value) == f"Data folder not found: {mine} (dataset_dir). Check the path."
    with pytest.raises(DataError, match="Data folder not found"):
        dl.resolve_training_data(mine, None, "unlabeled")
    monkeypatch.setenv(sample_data.ENV_VAR, str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"default sample CT cache; prepare it with `python tools/sample_data.py`"):
        dl.resolve_training_data(tmp_path / "cache", "auto", "unlabeled")
    _touch(tmp_path / "a_file")
    with pytest.raises(DataError, match="dataset_dir must be a folder of volumes, got a file"):
        dl.resolve_training_data(tmp_path / "a_file", "auto", "unlabeled")


def test_folder_scan_skips_label_maps_and_lists_them(tmp_path, caplog):
    affine = np.eye(4)
    ct = make_ct_phantom((16, 16, 12))
    save_nifti(ct, affine, tmp_path / "case1.nii.gz")
    save_nifti(ct.astype(np.int16), affine, tmp_path / "ct_int16.nii.gz")  # integers with many values: an image
    mr8 = (np.arange(16 * 16 * 12) % 200).reshape(16, 16, 12).astype(np.uint8)
    save_nifti(mr8, affine, tmp_path / "mr_8bit.nii.gz")  # 200 values: an image
    labels = np.zeros((16, 16, 12), np.uint8)
    labels[4:8, 4:8, 4:8] = 3
    save_nifti(labels, affine, tmp_path / "organs.nii.gz")  # 2 values: a label map by its values
    for name in ("case1_seg.nii.gz", "case1_label.nii", "brain_mask.nii.gz", "labelsTr/case1.nii.gz", "masks/a.nrrd"):
        _touch(tmp_path / name)  # unreadable, but the name alone marks them
    with caplog.at_level("WARNING"):
        entries = dl.datalist_from_folder(tmp_path)
    assert [Path(e["image"]).name for e in entries] == ["case1.nii.gz", "ct_int16.nii.gz", "mr_8bit.nii.gz"]
    text = caplog.text
    assert "skipped 6 file(s) that look like label maps" in text
    for name, reason in [
        ("organs.nii.gz", "integer volume with 2 distinct values"), ("case1_seg.nii.gz", "name contains '_seg'"),
        ("case1_label.nii", "name contains '_label'"), ("brain_mask.nii.gz", "name contains 'mask'"),
        ("labelsTr/case1.nii.gz", "in a folder named 'labelsTr'"), ("masks/a.nrrd", "in a folder named 'masks'"),
    ]:  # fmt: skip
        assert f"{(tmp_path / name).resolve()} ({reason})" in text
    only_labels = tmp_path / "only_labels"
    _touch(only_labels / "x_seg.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"No images found in .*only_labels \(1 label map\(s\) skipped\)"):
        dl.datalist_from_folder(only_labels)
    assert len(dl.datalist_from_folder(tmp_path, skip_label_maps=False)) == 10  # 4 + 5 named + only_labels/x_seg


def test_datalist_preset(tmp_path):
    path = _write(tmp_path / "d.json", {"unlabeled": [], "intensity_preset": "mri"})
    assert dl.datalist_preset(str(path), "ct") == "mri"
    assert dl.datalist_preset("auto", "ct", tmp_path) == "ct"  # no datalist.json in the folder
    _write(tmp_path / "datalist.json", {"intensity_preset": "mri"})
    assert dl.datalist_preset("auto", "ct", tmp_path) == "mri"
    assert dl.datalist_preset(str(_write(tmp_path / "e.json", {"unlabeled": []})), "ct") == "ct"
    assert dl.datalist_preset(str(tmp_path / "missing.json"), "ct") == "ct"
    bad = _write(tmp_path / "bad.json", {"intensity_preset": "pet"})
    with pytest.raises(DataError, match=r"bad.json: intensity_preset 'pet' is not one of \['ct', 'mri'\]"):
        dl.datalist_preset(str(bad), "ct")


def test_write_datalist_is_atomic_and_checks_keys(tmp_path):
    data = {key: [] for key in dl.DATALIST_KEYS}
    path = dl.write_datalist({**data, "name": "t"}, tmp_path / "d.json")
    assert json.loads(Path(path).read_text())["name"] == "t"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(atomic.PARTIAL_PREFIX)]
    with pytest.raises(ValueError, match="labeled"):
        dl.write_datalist({"unlabeled": []}, tmp_path / "e.json")
    assert not (tmp_path / "e.json").exists()
