"""Training stability of pretraining runs: did a run diverge, and its loss curves beside other runs'.

Used by ``tools/compare_stepwise_joint.py`` to compare the stepwise stages with the joint baseline over seeds. A run
is a list of stage folders trained one after the other (``[stage1, stage2, stage3]`` or ``[joint]``); everything is
read from what the stages wrote (``metrics.jsonl``), so any method bundle is covered without code here.

A run counts as **diverged** when

* its training stopped with a non-finite loss (:class:`common.engines.NonFiniteLossError`, found by the caller), or
* a logged loss term is NaN or infinite, or
* the total training loss of a stage ends more than ``explode_factor`` times above where that stage started (its
  first epoch). Stages are compared only with themselves: the total loss jumps at a stage boundary by design
  (stage 2 adds ``w_res * L_res``), which is no divergence.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.handlers import read_metrics_log  # noqa: E402

#: Loss terms checked for non-finite values and drawn (name in metrics.jsonl, panel title).
LOSS_TERMS = (("loss", "total (weighted)"), ("loss_dis", "discriminative"), ("loss_res", "restorative"),
              ("loss_adv", "adversarial (generator)"), ("loss_critic", "critic"))  # fmt: skip


def _records(stage_dir: str) -> list[dict]:
    try:
        return read_metrics_log(stage_dir)
    except FileNotFoundError:  # a stage stopped before its first epoch ended wrote no metrics
        return []


def divergence_reason(stage_dirs: Sequence[str], explode_factor: float = 10.0) -> str | None:
    """Why a finished run counts as diverged, or ``None`` when it did not.

    Args:
        stage_dirs: the run's stage folders in training order.
        explode_factor: a stage whose last training ``loss`` exceeds this multiple of its first epoch's counts as
            exploding (``inf`` turns the check off).

    Returns:
        A sentence naming the stage, the epoch and the term, or ``None``.
    """
    for stage_dir in stage_dirs:
        name = os.path.basename(os.path.normpath(stage_dir))
        records = _records(stage_dir)
        for record in records:
            for key, value in record.items():
                base = key.removeprefix("val_")
                if any(base == t for t, _ in LOSS_TERMS) and isinstance(value, (int, float)) and not math.isfinite(value):
                    return f"{name}: {key} = {value} at epoch {record['epoch']} ({record['split']})"
        train = [r for r in records if r["split"] == "train" and isinstance(r.get("loss"), (int, float))]
        if len(train) >= 2:
            first, last = abs(train[0]["loss"]), abs(train[-1]["loss"])
            if last > explode_factor * max(first, 1e-12):
                return (f"{name}: training loss exploded from {train[0]['loss']:.4g} (epoch {train[0]['epoch']}) to "
                        f"{train[-1]['loss']:.4g} (epoch {train[-1]['epoch']}), more than {explode_factor:g}x")  # fmt: skip
    return None


def stage_curve(stage_dirs: Sequence[str], key: str, split: str = "train") -> tuple[list[int], list[float], list[int]]:
    """One loss term over the epochs of consecutive stages: ``(epochs, values, stage boundaries)``.

    The epochs of later stages continue after those of earlier ones; a boundary is the last epoch of a stage.
    Epochs where the term is not logged (or is 0, i.e. inactive in the stage) are left out.
    """
    name = key if split == "train" else f"val_{key}"
    xs, ys, boundaries, offset = [], [], [], 0
    for stage_dir in stage_dirs:
        records = _records(stage_dir)
        for r in records:
            if r["split"] == split and isinstance(r.get(name), (int, float)) and r[name] != 0:
                xs.append(offset + r["epoch"])
                ys.append(float(r[name]))
        offset += max((r["epoch"] for r in records), default=0)
        boundaries.append(offset)
    return xs, ys, boundaries


def plot_stability(runs: Mapping[str, Mapping[int, Sequence[str]]], diverged: Mapping[str, Mapping[int, bool]], path: str) -> str:
    """Loss curves of every arm and seed: one panel per loss term, one colour per arm, one line per seed.

    Args:
        runs: ``{arm: {seed: [stage folders in order]}}``.
        diverged: ``{arm: {seed: bool}}``; a diverged run's last logged point is marked with an ``x``.
        path: the PNG to write.

    Returns:
        ``path``.
    """
    fig, axes = plt.subplots(len(LOSS_TERMS), 1, figsize=(9, 2.3 * len(LOSS_TERMS)), sharex=True)
    lowest = [math.inf] * len(LOSS_TERMS)
    for i, (arm, by_seed) in enumerate(runs.items()):
        color = f"C{i}"
        for seed, stage_dirs in sorted(by_seed.items()):
            for j, (ax, (key, _)) in enumerate(zip(axes, LOSS_TERMS)):
                x, y, boundaries = stage_curve(stage_dirs, key)
                if not x:
                    continue
                lowest[j] = min([lowest[j]] + [v for v in y if math.isfinite(v)])
                label = f"{arm}" if seed == min(by_seed) else None
                ax.plot(x, y, color=color, alpha=0.8, marker="." if len(x) < 30 else None, label=label)
                if diverged.get(arm, {}).get(seed):
                    ax.plot(x[-1], y[-1], "x", color=color, markersize=10)
                for b in boundaries[:-1]:
                    ax.axvline(b + 0.5, color=color, linewidth=0.6, linestyle=":")
    for ax, (_, title), low in zip(axes, LOSS_TERMS, lowest):
        ax.set_title(title, fontsize=9, loc="left")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
            if 0 < low < math.inf:  # positive terms: a log axis shows an explosion and a slow decline alike
                ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, "not logged in these runs", transform=ax.transAxes, ha="center", color="grey")
    axes[-1].set_xlabel("training epoch (stepwise: stages one after the other, dotted lines = stage ends; x = diverged)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
