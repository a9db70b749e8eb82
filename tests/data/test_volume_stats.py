"""Volume statistics, read as MONAI's LoadImage reads them, and their per-file cache."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from common.data import stats_cache
from common.data.nifti_io import save_nifti
from common.data.stats_cache import StatsCache, default_stats_cache_dir, file_signature
from common.data.volume_stats import VolumeStats, array_stats, ct_like, read_volume_stats


def test_stats_of_a_known_array():
    array = np.arange(1000, dtype=np.int16).reshape(1, 10, 10, 10) - 500
    affine = np.diag([0.5, 2.0, 3.0, 1.0])
    stats = array_stats(array, "x.nii.gz", affine)
    assert stats.shape == (1, 10, 10, 10) and stats.channels == 1 and stats.spatial_dims == 3
    assert stats.spacing == (0.5, 2.0, 3.0) and stats.axcodes == "RAS" and stats.voxels == 1000
    assert (stats.minimum, stats.maximum, stats.nan, stats.inf, stats.distinct) == (-500, 499, 0, 0, 1000)
    assert stats.percentile(50) == pytest.approx(np.percentile(array, 50)) and stats.percentile(0.5) == pytest.approx(
        -500 + 0.005 * 999
    )
    same_voxels = array_stats(array.astype(np.float64), "y.nrrd", affine)
    assert same_voxels.digest == stats.digest and same_voxels.distinct is None
    assert array_stats(array + 1, "z", affine).digest != stats.digest
    assert VolumeStats.from_json(json.loads(json.dumps(stats.to_json()))) == stats


def test_non_finite_voxels_are_counted_and_left_out_of_the_range():
    array = np.zeros((1, 4, 4, 4), np.float32)
    array[0, 0, 0, :3] = np.nan
    array[0, 1, 1, 1] = -np.inf
    array[0, 2, 2, 2] = 5.0
    stats = array_stats(array, "x", np.eye(4))
    assert (stats.nan, stats.inf, stats.minimum, stats.maximum) == (3, 1, 0.0, 5.0)
    restored = VolumeStats.from_json(json.loads(json.dumps(stats.to_json())))
    assert restored.nan == 3 and restored.percentiles == stats.percentiles
    empty = array_stats(np.full((1, 2, 2, 2), np.nan, np.float32), "x", np.eye(4))
    assert np.isnan(empty.minimum) and empty.percentiles == {} and not ct_like(empty)
    assert np.isnan(VolumeStats.from_json(json.loads(json.dumps(empty.to_json()))).maximum)


def test_ct_like_needs_air_in_hounsfield_units():
    def stats_of(values):
        return array_stats(np.asarray(values, np.float32).reshape(1, 1, 1, -1), "x", np.eye(4))

    body = list(np.linspace(-100, 1500, 900))
    assert ct_like(stats_of([-1000] * 100 + body))
    assert ct_like(stats_of([-3024] * 20 + [-1000] * 80 + body))  # outside-scan padding is still CT
    assert not ct_like(stats_of([0] * 100 + [v + 1000 for v in body]))  # CT without its rescale intercept
    assert not ct_like(stats_of(np.linspace(0, 800, 1000)))  # MRI
    assert not ct_like(stats_of([-1000] * 100 + [6000] * 900))  # not HU above


def test_read_volume_stats_gives_channels_first_as_monai(tmp_path):
    save_nifti(np.zeros((6, 5, 4, 2), np.float32), np.eye(4), tmp_path / "t.nii.gz")
    stats = read_volume_stats(tmp_path / "t.nii.gz")
    assert stats.shape == (2, 6, 5, 4) and stats.spatial_shape == (6, 5, 4)
    with pytest.raises(FileNotFoundError, match="nothing.nii.gz"):
        read_volume_stats(tmp_path / "nothing.nii.gz")


def test_cache_location_and_signatures(tmp_path, monkeypatch):
    monkeypatch.setenv(stats_cache.CACHE_ENV, str(tmp_path / "here"))
    assert default_stats_cache_dir() == tmp_path / "here"
    monkeypatch.delenv(stats_cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_stats_cache_dir() == tmp_path / "xdg" / "united-ssl" / "volume-stats"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_stats_cache_dir() == tmp_path / "home" / ".cache" / "united-ssl" / "volume-stats"

    f = tmp_path / "a.nii.gz"
    f.write_bytes(b"12345")
    assert file_signature(f)[:2] == [str(f), 5]
    series = tmp_path / "series"
    series.mkdir()
    for i in range(3):
        (series / f"IM{i}").write_bytes(b"x" * (i + 1))
    (series / ".hidden").write_bytes(b"ignored")
    assert file_signature(series)[:3] == [str(series), 3, 6]


def test_cache_entry_per_path_survives_and_ignores_bad_entries(tmp_path):
    save_nifti(np.ones((4, 4, 4), np.float32), np.eye(4), tmp_path / "v.nii.gz")
    cache = StatsCache(tmp_path / "cache")
    first = cache.stats(tmp_path / "v.nii.gz")
    assert (cache.hits, cache.misses) == (0, 1)
    assert StatsCache(tmp_path / "cache").lookup(tmp_path / "v.nii.gz") == first
    entry = next((tmp_path / "cache").glob("*.json"))
    entry.write_text("{broken")
    assert StatsCache(tmp_path / "cache").lookup(tmp_path / "v.nii.gz") is None
    data = {"version": stats_cache.STATS_VERSION - 1, "signature": file_signature(tmp_path / "v.nii.gz"),
            "stats": first.to_json()}  # fmt: skip
    entry.write_text(json.dumps(data))
    assert StatsCache(tmp_path / "cache").lookup(tmp_path / "v.nii.gz") is None  # an older format is recomputed
    disabled = StatsCache(False)
    disabled.stats(tmp_path / "v.nii.gz")
    assert disabled.folder is None and disabled.misses == 1


def test_unwritable_cache_only_disables_caching(tmp_path):
    save_nifti(np.ones((4, 4, 4), np.float32), np.eye(4), tmp_path / "v.nii.gz")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should go")
    cache = StatsCache(blocker / "cache")
    assert cache.stats(tmp_path / "v.nii.gz").shape == (1, 4, 4, 4)
    assert cache.stats(tmp_path / "v.nii.gz").shape == (1, 4, 4, 4) and cache.misses == 2
    assert os.path.isfile(blocker)
