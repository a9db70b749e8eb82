"""Tests of common.data.datalist: loading with clear errors, folder scans, training data resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.data import atomic
from common.data import datalist as dl
from common.data import sample_data


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


def test_missing_file_names_path_and_tool(tmp_path):
    missing = tmp_path / "nope" / "datalist.json"
    with pytest.raises(FileNotFoundError) as info:
        dl.load_datalist(missing, "unlabeled")
    assert str(missing) in str(info.value) and "tools/sample_data.py" in str(info.value)


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


def test_resolve_training_data_falls_back_to_folder(tmp_path, caplog):
    _touch(tmp_path / "x.nii.gz")
    with caplog.at_level("WARNING"):
        entries = dl.resolve_training_data(tmp_path, str(tmp_path / "missing.json"), "unlabeled")
    assert [Path(e["image"]).name for e in entries] == ["x.nii.gz"] and "missing.json" in caplog.text
    with pytest.raises(FileNotFoundError, match="missing.json.*not found"):
        dl.resolve_training_data(tmp_path / "empty", str(tmp_path / "missing.json"), "unlabeled")


def test_write_datalist_is_atomic_and_checks_keys(tmp_path):
    data = {key: [] for key in dl.DATALIST_KEYS}
    path = dl.write_datalist({**data, "name": "t"}, tmp_path / "d.json")
    assert json.loads(Path(path).read_text())["name"] == "t"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(atomic.PARTIAL_PREFIX)]
    with pytest.raises(ValueError, match="labeled"):
        dl.write_datalist({"unlabeled": []}, tmp_path / "e.json")
    assert not (tmp_path / "e.json").exists()
