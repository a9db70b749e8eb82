"""2D sample slices: indices, body fraction, slices equal to the volume's, splits kept, idempotence, the tool option."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from common.data import sample_data
from common.data.errors import DataError
from common.data.phantom import write_phantom_dataset
from common.data.slices import axial_slice_indices, body_fraction, slice_datalist, write_slice_dataset

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> str:
    return write_phantom_dataset(tmp_path_factory.mktemp("phantom3d"), num_volumes=3, shape=(24, 20, 16))


def test_slice_indices_are_gap_apart_and_centred() -> None:
    assert axial_slice_indices(10, 3.0, 6.0) == [0, 2, 4, 6, 8]  # 10 slices: 0..8, one left over at the top
    assert axial_slice_indices(11, 3.0, 6.0) == [0, 2, 4, 6, 8, 10]
    assert axial_slice_indices(10, 1.0, 4.0) == [0, 4, 8]  # one spare slice: it goes to the top
    assert axial_slice_indices(9, 1.0, 4.0) == [0, 4, 8]
    assert axial_slice_indices(7, 1.0, 4.0) == [1, 5]  # 2 slices 4 apart in 7: one spare on each side
    assert axial_slice_indices(5, 3.0, 1.0) == [0, 1, 2, 3, 4]  # a gap below the spacing keeps every slice
    with pytest.raises(ValueError):
        axial_slice_indices(0, 3.0, 6.0)


def test_body_fraction_thresholds() -> None:
    ct = np.full((10, 10), -1000.0)
    ct[:5] = 40.0
    assert body_fraction(ct, "CT") == 0.5
    mr = np.zeros((10, 10))
    mr[:, :3] = 100.0
    assert body_fraction(mr, "MR") == pytest.approx(0.3)
    assert body_fraction(np.zeros((4, 4)), "MR") == 0.0


def test_slices_equal_the_volume_slices_with_their_position_and_keep_the_splits(phantom: str, tmp_path) -> None:
    path = write_slice_dataset(phantom, tmp_path / "slices", gap_mm=6.0, min_body_fraction=0.0)
    data = json.loads(Path(path).read_text())
    source = json.loads(Path(phantom).read_text())
    assert data["spatial_dims"] == 2 and data["slicing"]["gap_mm"] == 6.0
    volume = nib.as_closest_canonical(nib.load(str(Path(phantom).parent / source["unlabeled"][0]["image"])))
    indices = axial_slice_indices(volume.shape[2], float(volume.header.get_zooms()[2]), 6.0)
    first = [e for e in data["unlabeled"] if e["subject"] == source["unlabeled"][0]["subject"]]
    assert [e["slice_index"] for e in first] == indices
    for entry in first:
        img = nib.load(str(Path(path).parent / entry["image"]))
        k = entry["slice_index"]
        assert img.shape == volume.shape[:2]
        np.testing.assert_array_equal(np.asarray(img.dataobj), np.asarray(volume.dataobj)[:, :, k])
        world = volume.affine @ np.array([3.0, 2.0, k, 1.0])  # a pixel keeps its world position
        np.testing.assert_allclose(img.affine @ np.array([3.0, 2.0, 0.0, 1.0]), world)
    # the splits of the source: no validation slice comes from a training subject
    train_subjects = {e["subject"] for e in data["unlabeled"]}
    assert train_subjects == {e["subject"] for e in source["unlabeled"]}
    assert {e["subject"] for e in data["validation"]}.isdisjoint(train_subjects)
    # labeled: label slices on the image slice's grid, equal to the label volume's slice
    entry = data["labeled"][0]
    label_volume = nib.as_closest_canonical(nib.load(str(Path(phantom).parent / source["labeled"][0]["label"])))
    label = nib.load(str(Path(path).parent / entry["label"]))
    np.testing.assert_array_equal(np.asarray(label.dataobj), np.asarray(label_volume.dataobj)[:, :, entry["slice_index"]])
    assert entry["label_set"] == "phantom" and entry["image"] in {e["image"] for e in data["unlabeled"] + data["validation"]}


def test_air_slices_are_skipped(phantom: str, tmp_path) -> None:
    everything = json.loads(Path(write_slice_dataset(phantom, tmp_path / "all", min_body_fraction=0.0)).read_text())
    body = json.loads(Path(write_slice_dataset(phantom, tmp_path / "body", min_body_fraction=0.3)).read_text())
    assert 0 < len(body["unlabeled"]) < len(everything["unlabeled"])
    with pytest.raises(ValueError, match="lower min_body_fraction"):
        write_slice_dataset(phantom, tmp_path / "none", min_body_fraction=1.01)


def test_rebuilt_only_when_source_or_settings_change(phantom: str, tmp_path) -> None:
    out = tmp_path / "slices"
    path = Path(write_slice_dataset(phantom, out))
    stamp = path.stat().st_mtime_ns
    assert Path(write_slice_dataset(phantom, out)).stat().st_mtime_ns == stamp  # complete: nothing rewritten
    write_slice_dataset(phantom, out, gap_mm=3.0)
    assert json.loads(path.read_text())["slicing"]["gap_mm"] == 3.0
    first = json.loads(path.read_text())["unlabeled"][0]["image"]
    os.remove(out / first)  # a missing file makes the folder incomplete
    write_slice_dataset(phantom, out, gap_mm=3.0)
    assert (out / first).is_file()


def test_slice_datalist_points_at_the_preparation_command(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("UNITED_SSL_DATA", str(tmp_path / "cache"))
    default = tmp_path / "cache" / "slices_2d"
    with pytest.raises(DataError, match=r"--slices_2d"):
        slice_datalist(default)
    assert slice_datalist(tmp_path / "my_images") == "auto"  # a user's own folder is scanned
    default.mkdir(parents=True)
    (default / "datalist.json").write_text("{}")
    assert slice_datalist(default) == str(default / "datalist.json")


def test_tool_option_writes_the_slices_of_a_prepared_cache(tmp_path, monkeypatch, capsys) -> None:
    cache = tmp_path / "cache"
    path = Path(write_phantom_dataset(cache, num_volumes=2, shape=(16, 16, 12)))
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "name": sample_data.DATASET_NAME, "tool_version": sample_data.TOOL_VERSION}))
    monkeypatch.setattr(sample_data, "download_sdist", lambda dest: pytest.fail("a complete cache is not downloaded"))
    spec = importlib.util.spec_from_file_location("united_ssl_tool_sample_data_slices", REPO / "tools" / "sample_data.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main(cache_dir=str(cache), slices_2d=True, gap_mm=3.0)
    out = capsys.readouterr().out
    assert f"2D datalist: {cache / 'slices_2d' / 'datalist.json'}" in out and "unlabeled: " in out
    written = json.loads((cache / "slices_2d" / "datalist.json").read_text())
    assert written["slicing"]["gap_mm"] == 3.0 and written["unlabeled"]
