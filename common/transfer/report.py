"""Tables and plots of transfer summaries: Markdown (mean ± sd per label fraction, gain over random with its p-value)
and PNG curves (metric against label fraction, one line per initialisation)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from common.transfer.statistics import Summary

__all__ = ["markdown_table", "plot_curves", "init_order"]


def init_order(inits: Sequence[str]) -> list[str]:
    """``random`` first, then the others in name order (``rotation/stage1`` < ``rotation/stage2`` ...)."""
    return sorted(set(inits), key=lambda name: (name != "random", name))


def _cell(s: Summary, digits: int) -> str:
    if math.isnan(s.mean):
        return "n/a"
    text = f"{s.mean:.{digits}f}" + (f" ± {s.std:.{digits}f}" if not math.isnan(s.std) else "")
    if not math.isnan(s.gain):
        p = "n/a" if math.isnan(s.p_value) else f"{s.p_value:.2f}"
        text += f" ({s.gain:+.{digits}f}, p={p}{', *' if s.significant else ''})"
    return text


def markdown_table(summaries: Sequence[Summary], task: str, metric: str, label: str | None = None, digits: int = 3) -> str:
    """One Markdown table: initialisations down, label fractions across.

    A cell reads ``mean ± sd (gain over random, p=paired t-test p-value[, *])``; ``*`` marks a significant gain.
    """
    cells = {(s.init, s.fraction): s for s in summaries if s.task == task and s.metric == metric}
    if not cells:
        return ""
    fractions = sorted({f for _, f in cells})
    inits = init_order([i for i, _ in cells])
    n = max(s.n for s in cells.values())
    lines = [
        f"**{task}: {label or metric}** (mean ± sd over {n} seeds; in brackets: gain over random and paired t-test p, * = p < 0.05)",
        "",
        "| initialisation | " + " | ".join(f"{100 * f:g} %" for f in fractions) + " |",
        "|---|" + "---|" * len(fractions),
    ]
    for init in inits:
        lines.append(f"| {init} | " + " | ".join(_cell(cells[(init, f)], digits) if (init, f) in cells else "" for f in fractions) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(
    summaries: Sequence[Summary], task: str, metric: str, path: str | os.PathLike, label: str | None = None,
    higher_is_better: bool | None = None,
) -> str:
    """``metric`` against label fraction for every initialisation (error bars: sd over seeds), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [s for s in summaries if s.task == task and s.metric == metric]
    if not cells:
        raise ValueError(f"no summary for task {task!r} and metric {metric!r}.")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for init in init_order([s.init for s in cells]):
        points = sorted((s.fraction, s.mean, 0.0 if math.isnan(s.std) else s.std) for s in cells if s.init == init)
        x = [100 * f for f, _, _ in points]
        style = {"color": "black", "linestyle": "--"} if init == "random" else {}
        ax.errorbar(x, [m for _, m, _ in points], yerr=[e for _, _, e in points], marker="o", capsize=3, label=init, **style)
    ax.set_xscale("log")
    ax.set_xticks([100 * f for f in sorted({s.fraction for s in cells})])
    ax.set_xticklabels([f"{100 * f:g}" for f in sorted({s.fraction for s in cells})])
    ax.set_xlabel("labelled training data (%)")
    direction = "" if higher_is_better is None else (" (higher is better)" if higher_is_better else " (lower is better)")
    ax.set_ylabel((label or metric) + direction)
    ax.set_title(f"{task}: {label or metric} vs label fraction")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return os.fspath(path)

