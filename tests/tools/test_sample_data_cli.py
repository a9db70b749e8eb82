"""Tests of tools/sample_data.py on an already prepared folder (no network)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.data import sample_data
from common.data.phantom import write_phantom_dataset

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "sample_data.py"


@pytest.fixture
def prepared_cache(tmp_path) -> Path:
    """A folder that looks complete to the tool: phantom volumes under the sample datalist's name."""
    path = Path(write_phantom_dataset(tmp_path / "cache", num_volumes=2, shape=(16, 16, 12)))
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "name": sample_data.DATASET_NAME, "tool_version": sample_data.TOOL_VERSION}))
    return path.parent


def test_cli_reports_datalist_and_volumes(prepared_cache, monkeypatch, capsys):
    def no_download(dest_dir):
        raise AssertionError("a complete cache must not be downloaded again")

    monkeypatch.setattr(sample_data, "download_sdist", no_download)
    spec = importlib.util.spec_from_file_location("united_ssl_tool_sample_data", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main(cache_dir=str(prepared_cache))
    out = capsys.readouterr().out
    assert f"Datalist: {prepared_cache / 'datalist.json'}" in out
    assert "images/phantom_000.nii.gz" in out and "16x16x12" in out and "3x3x3 mm" in out


def test_cli_runs_from_repo_root_without_pythonpath(prepared_cache):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "tools/sample_data.py", "--cache_dir", str(prepared_cache)],
        cwd=REPO, env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" in proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ".nii.gz" in ln]
    assert len(lines) == 4  # 2 images + 2 labels
