"""Tests of common.data.cache_location: the sample data folder from the environment or the repository."""

from __future__ import annotations

from pathlib import Path

from common.data import cache_location, sample_data


def test_default_cache_dir_env_and_repo(monkeypatch, tmp_path):
    monkeypatch.setenv(cache_location.ENV_VAR, str(tmp_path / "data"))
    assert cache_location.default_cache_dir() == str(tmp_path / "data")
    monkeypatch.delenv(cache_location.ENV_VAR)
    repo = Path(__file__).resolve().parents[2]
    assert cache_location.default_cache_dir() == str(repo / ".cache" / "sample_data")
    assert cache_location.repo_root() == repo


def test_sample_data_reexports_the_location():
    assert sample_data.default_cache_dir is cache_location.default_cache_dir
    assert (sample_data.ENV_VAR, sample_data.DATALIST_NAME) == ("UNITED_SSL_DATA", "datalist.json")
