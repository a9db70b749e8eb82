"""The data check: each bad input gives one line naming the file, errors stop before anything is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.data import stats_cache
from common.data.check import check_data
from common.data.errors import DataCheckFailed, DataError
from common.data.nifti_io import save_nifti
from common.data.phantom import make_ct_phantom
from common.data.sample_data import DATALIST_NAME, default_cache_dir

REPO = Path(__file__).resolve().parents[2]


def _ct(path: Path, shape=(24, 24, 20), affine=None, seed=0) -> str:
    save_nifti(make_ct_phantom(shape, seed=seed), np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine, path)
    return str(path)


def _mr(path: Path, shape=(24, 24, 20)) -> str:
    rng = np.random.default_rng(1)
    mr = np.zeros(shape, np.float32)
    mr[4:-4, 4:-4, 2:-2] = rng.uniform(100.0, 800.0, (shape[0] - 8, shape[1] - 8, shape[2] - 4))
    save_nifti(mr, np.eye(4), path)
    return str(path)


def _only(lines: list[str], path: str) -> str:
    hits = [ln for ln in lines if path in ln]
    assert len(hits) == 1, (path, lines)
    assert "\n" not in hits[0]
    return hits[0]


def test_clean_data_passes_with_no_problem(tmp_path):
    images = [_ct(tmp_path / f"ct{i}.nii.gz", seed=i) for i in range(2)]
    report = check_data(images, roi_size=16, preset="ct", output_dir=tmp_path / "out", validation=[images[1]])
    assert report.ok and report.lines() == [str(p) for p in report.warnings]
    assert [str(p) for p in report.warnings] == [
        f"warning: {images[1]}: is in both the training and the validation list: the validation loss is not on unseen data"
    ]
    assert not (tmp_path / "out").exists()  # the check writes nothing


def test_each_bad_file_gives_one_error_line_naming_it(tmp_path):
    good = _ct(tmp_path / "good.nii.gz")
    raw = Path(good).read_bytes()
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(raw[: len(raw) // 2])
    flat = tmp_path / "slice2d.nii.gz"
    save_nifti(make_ct_phantom((24, 24, 20))[:, :, 10], np.eye(4), flat)
    four_d = tmp_path / "dynamic4d.nii.gz"
    save_nifti(np.stack([make_ct_phantom((24, 24, 20))] * 3, axis=-1), np.eye(4), four_d)
    nan = make_ct_phantom((24, 24, 20))
    nan.ravel()[:: 100] = np.nan
    save_nifti(nan, np.eye(4), tmp_path / "nan.nii.gz")
    inf = make_ct_phantom((24, 24, 20))
    inf[0, 0, 0] = np.inf
    save_nifti(inf, np.eye(4), tmp_path / "inf.nii.gz")
    missing = tmp_path / "missing.nii.gz"
    files = [truncated, flat, four_d, tmp_path / "nan.nii.gz", tmp_path / "inf.nii.gz", missing]

    report = check_data([str(f) for f in files] + [good], roi_size=16, preset="ct", raise_on_error=False)
    lines = report.lines()
    assert len(report.errors) == len(files) and not report.warnings, lines
    assert "EOFError" in _only(lines, str(truncated)) and "cannot be read" in _only(lines, str(truncated))
    assert "is a 2D image (shape 24x24); the bundle needs 3D volumes (spatial_dims=3)" in _only(lines, str(flat))
    assert "loads as 3 channels of 24x24x20" in _only(lines, str(four_d))
    assert "116 of 11520 voxels (1.01 %) are NaN: every loss would be NaN" in _only(lines, "nan.nii.gz")
    assert "1 of 11520 voxels (0.00868 %) are infinite" in _only(lines, "inf.nii.gz")
    assert _only(lines, str(missing)) == f"error: {missing}: image file not found"
    assert all(ln.startswith("error: ") for ln in lines) and not any(good in ln for ln in lines)


def test_errors_exit_without_traceback_listing_every_problem(tmp_path):
    missing = str(tmp_path / "a_missing.nii.gz")
    small = _ct(tmp_path / "small.nii.gz", shape=(12, 12, 10))
    with pytest.raises(DataError) as info:
        check_data([missing, small], roi_size=16, preset="ct", output_dir=tmp_path / "out", validation=[])
    error = info.value
    assert isinstance(error, SystemExit) and not isinstance(error, Exception)
    lines = str(error).splitlines()
    assert lines[0].startswith("Data check failed with 1 error (2 warnings); nothing was trained or written.")
    assert lines[1:] == [
        f"error: {missing}: image file not found",
        f"warning: {small}: is 12x12x10 voxels (RAS), smaller than roi_size 16x16x16: padded with background to 16x16x16",
        "warning: validation: no validation volumes: validation and early stopping are off",
    ]
    assert error.code == str(error)  # a string code: Python prints it and exits with status 1
    assert not (tmp_path / "out").exists()


def test_debug_raises_an_ordinary_exception_chained_to_the_reader_error(tmp_path, monkeypatch):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x1f\x8b" + b"\0" * 30)
    with pytest.raises(DataCheckFailed, match="bad.nii.gz: image cannot be read") as info:
        check_data([str(bad)], debug=True)
    assert info.value.__cause__ is not None and not isinstance(info.value, SystemExit)
    monkeypatch.setenv("UNITED_SSL_DEBUG", "1")
    with pytest.raises(DataCheckFailed):
        check_data([str(bad)])


def test_intensity_range_is_judged_against_the_preset(tmp_path):
    ct = _ct(tmp_path / "ct.nii.gz")
    mr = _mr(tmp_path / "mr.nii.gz")
    as_ct = check_data([ct, mr], preset="ct").lines()
    line = _only(as_ct, mr)
    assert "do not look like CT in HU" in line and "intensity_preset 'mri'" in line
    low, high = (float(v) for v in line.split("intensities [")[1].split("]")[0].split(", "))
    assert low == 0.0 and 700.0 < high <= 800.0
    assert f"squeezes them into [0.50, {(high + 1000) / 2000:.2f}]" in line
    as_mri = check_data([ct, mr], preset="mri").lines()
    assert "look like CT in HU" in _only(as_mri, ct) and "intensity_preset 'ct'" in _only(as_mri, ct)
    assert check_data([ct, mr]).lines() == []  # no preset: no judgement


def test_crop_size_follows_orientation_and_spacing(tmp_path):
    # stored axes (k, j, i) = (S, A, R): 10 slices along x in RAS terms
    swap = np.array([[0, 0, 2.0, 0], [0, 2.0, 0, 0], [2.0, 0, 0, 0], [0, 0, 0, 1]])
    path = _ct(tmp_path / "swapped.nii.gz", shape=(40, 30, 10), affine=swap)
    assert check_data([path], roi_size=[10, 30, 40]).lines() == []  # RAS order: 10 x 30 x 40
    line = _only(check_data([path], roi_size=[40, 30, 10]).lines(), path)
    assert "is 10x30x40 voxels (RAS), smaller than roi_size 40x30x10: padded with background to 40x30x40" in line
    resampled = _only(check_data([path], roi_size=[10, 30, 40], spacing=4.0).lines(), path)
    assert "is 5x15x20 voxels (RAS after resampling to 4x4x4 mm)" in resampled


def test_label_grid_must_match_its_image(tmp_path):
    image = _ct(tmp_path / "img.nii.gz")
    good = tmp_path / "good_label.nii.gz"
    save_nifti(np.zeros((24, 24, 20), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]), good)
    shifted = tmp_path / "shifted_label.nii.gz"
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [0.0, 0.0, 6.0]
    save_nifti(np.zeros((24, 24, 20), np.uint8), affine, shifted)
    cropped = tmp_path / "cropped_label.nii.gz"
    save_nifti(np.zeros((24, 24, 10), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]), cropped)
    entries = [{"image": image, "label": str(p)} for p in (good, shifted, cropped)] + [{"image": image}]
    report = check_data(entries, label_key="label", raise_on_error=False)
    lines = report.lines()
    assert len(lines) == 3, lines
    assert "origin (0.0, 0.0, 6.0) vs (0.0, 0.0, 0.0) mm" in _only(lines, str(shifted))
    assert f"label map is not on the grid of its image {image} (shape 24x24x10 vs 24x24x20" in _only(lines, str(cropped))
    assert _only(lines, "training entry 3") == "error: training entry 3: has no 'label' path (label_key='label')"
    assert check_data(entries[:1], label_key="label").lines() == []


def test_output_folder_that_cannot_be_written(tmp_path):
    image = _ct(tmp_path / "img.nii.gz")
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    report = check_data([image], output_dir=blocker / "runs" / "rot", raise_on_error=False)
    assert report.lines() == [
        f"error: output_dir {blocker / 'runs' / 'rot'}: cannot be created: {blocker} is a file, not a folder"
    ]
    assert check_data([image], output_dir=tmp_path / "new" / "deeper").ok


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write to read-only folders")
def test_read_only_output_folder(tmp_path):
    image = _ct(tmp_path / "img.nii.gz")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        line = check_data([image], output_dir=locked / "run", raise_on_error=False).lines()[0]
    finally:
        locked.chmod(0o755)
    assert line.startswith(f"error: output_dir {locked / 'run'}: cannot be written")


def test_missing_image_key_empty_list_and_duplicates(tmp_path):
    a = _ct(tmp_path / "a.nii.gz")
    copy = tmp_path / "copy.nii"  # same voxels, other format
    save_nifti(make_ct_phantom((24, 24, 20)), np.diag([2.0, 2.0, 2.0, 1.0]), copy)
    lines = check_data([{"label": "x"}, a, str(copy)], raise_on_error=False).lines()
    assert lines == [
        "error: training entry 0: has no 'image' path (keys: ['label'])",
        f"warning: {copy}: has the same voxels as {a}",
    ]
    assert check_data([], raise_on_error=False).lines() == ["error: training list: is empty: no volume to train on"]


def test_dicom_series_and_mha_are_read_like_monai(tmp_path):
    from dicom_series_writer import write_dicom_series

    import itk

    volume_zyx = make_ct_phantom((20, 18, 8)).transpose(2, 1, 0)
    write_dicom_series(tmp_path / "series", volume_zyx, (0.8, 0.75, 2.0), (-20.0, -30.0, -100.0))
    mha = tmp_path / "ct.mha"
    itk.imwrite(itk.image_from_array(np.ascontiguousarray(volume_zyx)), str(mha))
    report = check_data([str(tmp_path / "series"), str(mha)], roi_size=[20, 18, 8], preset="ct")
    assert report.ok and report.lines() == []
    assert report.volumes[str(tmp_path / "series")].spatial_shape == (20, 18, 8)
    assert report.volumes[str(mha)].spatial_shape == (20, 18, 8)


def test_cache_is_hit_the_second_time_and_invalidated_by_a_change(tmp_path, monkeypatch):
    paths = [_ct(tmp_path / f"ct{i}.nii.gz", seed=i) for i in range(3)]
    cache = tmp_path / "cache"
    first = check_data(paths, cache_dir=cache)
    assert (first.cache_hits, first.cache_misses) == (0, 3) and len(list(cache.glob("*.json"))) == 3

    def no_read(path):
        raise AssertionError(f"{path} was read again")

    original = stats_cache.read_volume_stats
    monkeypatch.setattr(stats_cache, "read_volume_stats", no_read)
    second = check_data(paths, cache_dir=cache)
    assert (second.cache_hits, second.cache_misses) == (3, 0)
    assert {p: s.to_json() for p, s in second.volumes.items()} == {p: s.to_json() for p, s in first.volumes.items()}

    monkeypatch.setattr(stats_cache, "read_volume_stats", original)
    nan = make_ct_phantom((24, 24, 20))
    nan[1, 1, 1] = np.nan
    save_nifti(nan, np.eye(4), paths[1])  # the file changes: size and mtime differ
    third = check_data(paths, cache_dir=cache, raise_on_error=False)
    assert (third.cache_hits, third.cache_misses) == (2, 1)
    assert _only(third.lines(), paths[1]).endswith("are NaN: every loss would be NaN; fix or remove the file")
    assert len(list(cache.glob("*.json"))) == 3  # the changed file replaced its own entry


def test_a_bundle_run_stops_with_one_line_and_no_traceback(tmp_path):
    """Under ``python -m monai.bundle run``, the check in ``initialize`` exits 1 with the lines, no traceback."""
    truncated = tmp_path / "cut.nii.gz"
    raw = Path(_ct(tmp_path / "whole.nii.gz")).read_bytes()
    truncated.write_bytes(raw[: len(raw) // 3])
    config = {
        "imports": ["$import common", "$import common.data"],
        "output_dir": str(tmp_path / "models"),
        "data": [{"image": str(truncated)}],
        "initialize": [
            "$common.data.check_data(@data, roi_size=[16, 16, 16], preset='ct', output_dir=@output_dir, validation=[])"
        ],
        "run": ["$print('trained')"],
    }
    (tmp_path / "train.json").write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(tmp_path / "train.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "UNITED_SSL_DEBUG": ""},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "trained" not in proc.stdout
    assert f"error: {truncated}: image cannot be read: EOFError:" in proc.stderr
    assert "warning: validation: no validation volumes: validation and early stopping are off" in proc.stderr
    assert not (tmp_path / "models").exists()


@pytest.mark.real_data
def test_real_sample_data_passes_and_the_mr_volume_is_flagged_for_the_ct_preset():
    from common.data.datalist import load_datalist

    datalist = Path(default_cache_dir()) / DATALIST_NAME
    if not datalist.is_file():
        pytest.skip(f"real sample data not prepared: {datalist} missing (run `python tools/sample_data.py`)")
    train, val = load_datalist(datalist, "unlabeled"), load_datalist(datalist, "validation")
    mr = load_datalist(datalist, "unlabeled_mr")
    report = check_data(train + mr, roi_size=[32, 32, 32], preset="ct", validation=val)
    assert report.ok and report.lines() == [
        f"warning: {mr[0]['image']}: intensities [-4, 692] (0.5th-99.5th percentile) do not look like CT in HU "
        f"(no air near -1000 HU); the 'ct' preset squeezes them into [0.50, 0.85]; if this is MRI, use "
        f"intensity_preset 'mri'",
        f"warning: {mr[0]['image']}: is 117x91x20 voxels (RAS), smaller than roi_size 32x32x32: padded with "
        f"background to 117x91x32",
        f"warning: {val[0]['image']}: is 512x512x20 voxels (RAS), smaller than roi_size 32x32x32: padded with "
        f"background to 512x512x32",
    ]
    assert check_data(mr, roi_size=[16, 16, 16], preset="mri").lines() == []
    labeled = check_data(load_datalist(datalist, "labeled"), label_key="label", preset="ct")
    assert labeled.ok and not labeled.lines()

