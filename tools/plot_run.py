"""Plot a pretraining run: every loss term across its stages, the pretext metric against chance, and restorations.

Usage (from the repository root)::

    python tools/plot_run.py bundles/rotation/models            # the run folder holding stage1/, stage2/, ...
    python tools/plot_run.py /runs/rot --output_dir /tmp/plots

Reads only what the stages wrote (``metrics.jsonl``, ``run.json``, ``restorations.npz``) and writes, into
``<run_dir>/plots/`` unless told otherwise:

* ``losses.png``: one panel per loss term (total, discriminative, restorative, adversarial, critic), training and
  validation, epochs of all stages on one axis with the stage boundaries marked;
* ``learning.png``: the pretext metric on the validation cubes per stage, against its chance level;
* ``restorations.png``: per stage, the newest validation panel of input | target | restoration.
"""

from __future__ import annotations

import os
import sys

import fire
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.handlers import RESTORATIONS, read_metrics_log, read_run_record  # noqa: E402

STAGE_ORDER = ("stage1", "stage2", "stage3", "joint")
TERMS = (("loss", "total (weighted)"), ("loss_dis", "discriminative"), ("loss_res", "restorative"),
         ("loss_adv", "adversarial (generator)"), ("loss_critic", "critic"))  # fmt: skip


def stage_dirs(run_dir: str) -> list[str]:
    """The stage folders of a run that have a metrics log, in stage order (joint last).

    Raises:
        FileNotFoundError: no stage folder with a ``metrics.jsonl`` (the message names the run folder).
    """
    found = [os.path.join(run_dir, s) for s in STAGE_ORDER if os.path.isfile(os.path.join(run_dir, s, "metrics.jsonl"))]
    if not found:
        raise FileNotFoundError(
            f"no stage folder with a metrics.jsonl in {run_dir}: pass the folder that holds stage1/, stage2/... "
            "(a bundle's output_dir, e.g. bundles/rotation/models)."
        )
    return found


def _curves(stage_dir: str, offset: int, key: str) -> dict[str, tuple[list[int], list[float]]]:
    lines = read_metrics_log(stage_dir)
    out = {}
    for split, name in (("train", key), ("validation", f"val_{key}")):
        points = [(offset + r["epoch"], r[name]) for r in lines if r["split"] == split and name in r]
        if points and any(v != 0 for _, v in points):
            out[split] = ([p[0] for p in points], [p[1] for p in points])
    return out


def plot_losses(stages: list[str], path: str) -> str:
    """Every loss term over the epochs of all stages, training and validation; stage boundaries marked."""
    fig, axes = plt.subplots(len(TERMS), 1, figsize=(9, 2.2 * len(TERMS)), sharex=True)
    offset, boundaries = 0, []
    for stage_dir in stages:
        epochs = max(r["epoch"] for r in read_metrics_log(stage_dir))
        name = os.path.basename(stage_dir)
        for ax, (key, title) in zip(axes, TERMS):
            for split, (x, y) in _curves(stage_dir, offset, key).items():
                ax.plot(x, y, "-" if split == "train" else "--", marker="." if len(x) < 30 else None,
                        color=f"C{STAGE_ORDER.index(name)}", label=f"{name} {split}")  # fmt: skip
            ax.set_title(title, fontsize=9, loc="left")
        offset += epochs
        boundaries.append(offset)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=2)
        else:
            ax.text(0.5, 0.5, "inactive in these stages", transform=ax.transAxes, ha="center", color="grey")
        for b in boundaries[:-1]:
            ax.axvline(b + 0.5, color="grey", linewidth=0.8, linestyle=":")
    axes[-1].set_xlabel("epoch (stages one after the other)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_learning(stages: list[str], path: str) -> str:
    """The pretext metric on the validation cubes per stage against its chance level."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for stage_dir in stages:
        settings = read_run_record(stage_dir).get("settings", {})
        metric, chance = settings.get("learning_metric") or "val_loss_dis", settings.get("learning_chance")
        lines = [r for r in read_metrics_log(stage_dir) if metric in r]
        name = os.path.basename(stage_dir)
        ax.plot([r["epoch"] for r in lines], [r[metric] for r in lines], marker=".", label=f"{name}: {metric}",
                color=f"C{STAGE_ORDER.index(name)}")  # fmt: skip
        if chance is not None:
            ax.axhline(chance, color="grey", linestyle=":", linewidth=1)
            ax.text(0.99, chance, "chance", transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=8)
    ax.set_xlabel("epoch of the stage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_restorations(stages: list[str], path: str) -> str | None:
    """The newest validation panel (input | target | restoration) of every stage that restores."""
    panels = [(os.path.basename(s), np.load(os.path.join(s, RESTORATIONS))) for s in stages if os.path.isfile(os.path.join(s, RESTORATIONS))]
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.6 * len(panels)), squeeze=False)
    for ax, (name, data) in zip(axes[:, 0], panels):
        ax.imshow(data["panel"].T if data["panel"].shape[0] > data["panel"].shape[1] else data["panel"], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{name}, epoch {int(data['epoch'])}: input | target | restoration", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_run(run_dir: str, output_dir: str | None = None) -> list[str]:
    """Write the run's plots and print where they are.

    Args:
        run_dir: the folder holding the stage folders (a bundle's ``output_dir``).
        output_dir: where the PNGs go (default ``<run_dir>/plots``).

    Returns:
        The written files.
    """
    stages = stage_dirs(run_dir)
    output_dir = output_dir or os.path.join(run_dir, "plots")
    os.makedirs(output_dir, exist_ok=True)
    written = [
        plot_losses(stages, os.path.join(output_dir, "losses.png")),
        plot_learning(stages, os.path.join(output_dir, "learning.png")),
        plot_restorations(stages, os.path.join(output_dir, "restorations.png")),
    ]
    written = [w for w in written if w is not None]
    print("Plots:\n  " + "\n  ".join(written))
    return written


if __name__ == "__main__":
    fire.Fire(plot_run, serialize=lambda _: None)
