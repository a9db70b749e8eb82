"""tools/benchmark_scaling.py: growth factors per doubling, hand-computed; a configuration that failed has none."""

from __future__ import annotations

import math
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))

import benchmark_scaling  # noqa: E402


def _row(voxels: int, seconds: float, mb: float) -> dict:
    return {"stage": 1, "roi_size": [voxels, 1, 1], "cubes": 2, "step_seconds": seconds, "step_rss_mb": mb, "peak_rss_mb": mb}


def test_growth_per_doubling_of_voxels() -> None:
    rows = [_row(8, 1.0, 100.0), _row(16, 2.0, 400.0), _row(64, 32.0, 400.0)]
    size = lambda r: math.prod(r["roi_size"])  # noqa: E731
    # 8 -> 16 voxels: one doubling, time x2, memory x4; 16 -> 64: two doublings, time x16 = x4 per doubling, memory x1
    assert benchmark_scaling._growth(rows, size) == ["-", "x2.00 / x4.00", "x4.00 / x1.00"]


def test_a_failed_configuration_breaks_the_chain_and_is_reported() -> None:
    rows = [_row(8, 1.0, 100.0), {"stage": 1, "roi_size": [16, 1, 1], "cubes": 2, "error": "did not finish in 300 s"}]
    size = lambda r: math.prod(r["roi_size"])  # noqa: E731
    assert benchmark_scaling._growth(rows, size) == ["-", "-"]
    table = benchmark_scaling._table(rows, lambda r: str(r["roi_size"][0]), size)
    assert "did not finish in 300 s" in table.splitlines()[-1]


def test_the_sweep_covers_the_issue_cube_sizes() -> None:
    assert benchmark_scaling.CUBE_SIZES == ((32, 32, 32), (64, 64, 32), (64, 64, 64), (96, 96, 96))
    with pytest.raises(StopIteration):  # /proc/self/status has no such field
        benchmark_scaling._status_mb("NoSuchField")
