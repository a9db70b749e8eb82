"""Summaries over seeds and the paired test against random, with hand-computed values."""

from __future__ import annotations

import math

import pytest
from scipy.stats import t as student_t

from common.transfer.statistics import paired_gain, summarise


def test_paired_gain_by_hand() -> None:
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 with 2 degrees of freedom
    gain, p = paired_gain([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert gain == pytest.approx(2.0)
    assert p == pytest.approx(2 * student_t.sf(2 * math.sqrt(3), 2))
    assert p == pytest.approx(0.0742, abs=1e-3)


def test_lower_is_better_flips_the_gain_and_nans_are_dropped() -> None:
    gain, _ = paired_gain([10.0, 8.0, math.nan], [12.0, 11.0, 5.0], higher_is_better=False)
    assert gain == pytest.approx(2.5)  # 2 and 3 mm shorter distances
    assert math.isnan(paired_gain([1.0, 2.0], [0.0, 1.0])[1])  # equal differences: t undefined
    assert math.isnan(paired_gain([1.0], [0.0])[1])


def test_summaries_pair_by_seed_and_flag_significance() -> None:
    rows = []
    for seed, (rand, pre) in enumerate([(0.50, 0.70), (0.52, 0.71), (0.48, 0.69), (0.51, 0.72)]):
        rows.append({"task": "seg", "init": "random", "fraction": 0.1, "seed": seed, "dice": rand})
        rows.append({"task": "seg", "init": "m/stage1", "fraction": 0.1, "seed": seed, "dice": pre})
    rows.append({"task": "seg", "init": "m/stage2", "fraction": 0.1, "seed": 0, "dice": 0.1})
    out = {s.init: s for s in summarise(rows, {"dice": True, "hd95_mm": False})}
    assert out["random"].n == 4 and out["random"].mean == pytest.approx(0.5025) and math.isnan(out["random"].gain)
    assert out["m/stage1"].gain == pytest.approx(0.2025) and out["m/stage1"].significant
    assert out["m/stage1"].std == pytest.approx(0.012909944, rel=1e-6)
    assert out["m/stage2"].n == 1 and math.isnan(out["m/stage2"].p_value) and not out["m/stage2"].significant
    worse = summarise([{**r, "dice": 1 - r["dice"]} if r["init"] == "m/stage1" else r for r in rows], {"dice": True})
    assert not {s.init: s for s in worse}["m/stage1"].significant  # significantly worse is not a gain
