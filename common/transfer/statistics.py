"""Summaries of transfer runs: mean and spread over seeds, and whether an initialisation beats random (paired test).

Runs of the same task, label fraction and seed share the labelled subset and the training seed, so an
initialisation's result and random initialisation's result for one seed form a pair. The gain is tested with a
two-sided paired t-test over seeds (:func:`scipy.stats.ttest_rel`); it is called significant when ``p < alpha`` and the
mean difference points the metric's better way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Summary", "summarise", "paired_gain"]


@dataclass
class Summary:
    """One cell of the results table.

    Attributes:
        task, init, fraction, metric: what was measured.
        n: number of seeds.
        mean, std: over seeds (``std`` with ``ddof=1``; NaN with one seed).
        gain: mean paired difference to random initialisation (better is positive, whatever the metric's direction).
        p_value: paired t-test against random (NaN for random itself, fewer than 2 pairs, or no variation).
        significant: ``p_value < alpha`` and ``gain > 0``.
    """

    task: str
    init: str
    fraction: float
    metric: str
    n: int
    mean: float
    std: float
    gain: float = math.nan
    p_value: float = math.nan
    significant: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def paired_gain(values: Sequence[float], baseline: Sequence[float], higher_is_better: bool = True) -> tuple[float, float]:
    """``(mean gain, p-value)`` of paired ``values`` against ``baseline`` (NaN pairs dropped).

    The gain is ``mean(values - baseline)``, negated when lower is better. The p-value is NaN with fewer than two
    pairs or when every difference is the same (the t statistic is undefined).
    """
    from scipy.stats import ttest_rel

    a, b = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.shape} and {b.shape}.")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if len(a) == 0:
        return math.nan, math.nan
    sign = 1.0 if higher_is_better else -1.0
    gain = float(sign * np.mean(a - b))
    if len(a) < 2 or np.allclose(a - b, (a - b)[0]):
        return gain, math.nan
    return gain, float(ttest_rel(a, b).pvalue)


def summarise(
    runs: Iterable[Mapping[str, Any]],
    metrics: Mapping[str, bool],
    baseline: str = "random",
    alpha: float = 0.05,
) -> list[Summary]:
    """Summaries per (task, init, fraction, metric) from run rows.

    Args:
        runs: rows with ``task``, ``init``, ``fraction``, ``seed`` and metric values (NaN allowed, e.g. a Hausdorff
            distance with an empty prediction).
        metrics: metric name -> whether higher is better (e.g. ``{"dice": True, "hd95": False}``); metrics a
            task's rows lack are skipped.
        baseline: the init every other is compared with.
        alpha: significance level.
    """
    table: dict[tuple[str, str, float], dict[int, Mapping[str, Any]]] = {}
    for row in runs:
        table.setdefault((row["task"], row["init"], float(row["fraction"])), {})[int(row["seed"])] = row
    out = []
    for (task, init, fraction), by_seed in sorted(table.items()):
        seeds = sorted(by_seed)
        base = table.get((task, baseline, fraction), {})
        for metric, higher in metrics.items():
            if not all(metric in by_seed[s] for s in seeds):
                continue
            values = np.array([float(by_seed[s][metric]) for s in seeds])
            finite = values[~np.isnan(values)]
            summary = Summary(
                task, init, fraction, metric, len(finite),
                float(finite.mean()) if len(finite) else math.nan,
                float(finite.std(ddof=1)) if len(finite) > 1 else math.nan,
            )  # fmt: skip
            paired = [s for s in seeds if s in base and metric in base[s]]
            if init != baseline and paired:
                summary.gain, summary.p_value = paired_gain(
                    [float(by_seed[s][metric]) for s in paired], [float(base[s][metric]) for s in paired], higher
                )
                summary.significant = bool(summary.p_value < alpha and summary.gain > 0)
            out.append(summary)
    return out
