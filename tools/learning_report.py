"""What pretraining learned: the pretext metric on validation cubes against chance, and the restoration loss per stage.

Usage (from the repository root)::

    python tools/learning_report.py bundles/rotation/models --out_dir results/learning
    python tools/learning_report.py /runs/rotation /runs/jigsaw --out_dir results/learning --name learning

Each argument is a pretraining output folder (holding ``stage1``, ``stage2``, ``stage3``, ``joint``) or a stage folder
itself. Every stage folder's ``run.json`` names the method's pretext metric and its chance level (``learning_metric``,
``learning_chance``) and its ``metrics.jsonl`` holds the per-epoch curves, so any method bundle is reported without
code here. Writes ``<name>.png`` (pretext metric over epochs with the chance line; restoration loss over epochs)
and ``<name>.md`` (one row per stage: start, end, best, chance, verdict, restoration start -> end).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import fire

from common.handlers import read_metrics_log, read_run_record, stage_summary
from common.handlers.learning_summary import StageSummary

STAGES = ("stage1", "stage2", "stage3", "joint")


def stage_folders(paths: Sequence[str]) -> dict[str, str]:
    """``{"<run>/<stage>": folder}`` for every stage folder (with ``run.json`` and ``metrics.jsonl``) in ``paths``.

    ``<run>`` is the output folder's name (the bundle's name for a bundle's default ``models`` folder).
    """
    found: dict[str, str] = {}
    for path in paths:
        path = os.path.normpath(os.fspath(path))
        if os.path.isfile(os.path.join(path, "metrics.jsonl")):
            found[f"{os.path.basename(os.path.dirname(path))}/{os.path.basename(path)}"] = path
            continue
        for stage in STAGES:
            folder = os.path.join(path, stage)
            if os.path.isfile(os.path.join(folder, "metrics.jsonl")) and os.path.isfile(os.path.join(folder, "run.json")):
                run = os.path.basename(path)
                if run == "models":  # a bundle's default output folder: name the run after the bundle
                    run = read_run_record(folder).get("bundle") or run
                name, n = f"{run}/{stage}", 1
                while name in found:
                    n += 1
                    name = f"{run}-{n}/{stage}"
                found[name] = folder
    if not found:
        raise FileNotFoundError(f"no stage folder with run.json and metrics.jsonl in {list(paths)}.")
    return found


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def markdown(summaries: dict[str, StageSummary]) -> str:
    """The learning table in Markdown."""
    lines = [
        "| stage | epochs | pretext metric (cubes) | start | end | best | chance | verdict | restoration loss start → end |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        restoration = "-" if s.restoration_first is None else f"{_fmt(s.restoration_first)} → {_fmt(s.restoration_last)}"
        lines.append(
            f"| {name} | {s.epochs} | {s.metric} ({s.split}) | {_fmt(s.first)} | {_fmt(s.last)} | {_fmt(s.best)} | "
            f"{_fmt(s.chance)} | {s.verdict} | {restoration} |"
        )
    return "\n".join(lines) + "\n"


def plot(folders: dict[str, str], summaries: dict[str, StageSummary], path: str) -> str:
    """Two panels: the pretext metric per stage (validation solid, training dashed, chance dotted) and the restoration
    loss per stage (validation when logged, else training; log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    restoration_drawn = False
    for i, (name, folder) in enumerate(folders.items()):
        color = colors[i % len(colors)]
        lines = read_metrics_log(folder)
        s = summaries[name]
        metric = s.metric if s.split == "validation" else f"val_{s.metric}"
        train_metric = metric.removeprefix("val_")
        val = [(r["epoch"], r[metric]) for r in lines if r["split"] == "validation" and metric in r]
        train = [(r["epoch"], r[train_metric]) for r in lines if r["split"] == "train" and train_metric in r]
        if val:
            left.plot(*zip(*val), color=color, marker=".", label=f"{name} validation")
        if train:
            left.plot(*zip(*train), color=color, linestyle="--", alpha=0.5, label=f"{name} training")
        if s.chance is not None:
            left.axhline(s.chance, color=color, linestyle=":", alpha=0.8)
        for split, key, style in (("validation", "val_loss_res", "-"), ("train", "loss_res", "--")):
            curve = [(r["epoch"], r[key]) for r in lines if r["split"] == split and r.get(key)]
            if curve:
                right.plot(*zip(*curve), color=color, linestyle=style, label=f"{name} {split}")
                restoration_drawn = True
                break
    left.set_xlabel("epoch")
    left.set_ylabel("pretext metric (dotted: chance)")
    left.set_title("discriminative task")
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    right.set_xlabel("epoch")
    right.set_ylabel("restoration loss")
    right.set_title("restorative task")
    right.grid(alpha=0.3)
    if restoration_drawn:
        right.set_yscale("log")
        right.legend(fontsize=7)
    else:
        right.text(0.5, 0.5, "no restorative stage", ha="center", va="center", transform=right.transAxes)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def learning_report(*paths: str, out_dir: str = ".", name: str = "learning") -> dict[str, str]:
    """Write ``<out_dir>/<name>.png`` and ``<out_dir>/<name>.md`` for the stage folders found in ``paths``.

    Returns:
        The paths written, under ``png`` and ``md``.
    """
    folders = stage_folders(paths)
    summaries = {n: stage_summary(f) for n, f in folders.items()}
    os.makedirs(out_dir, exist_ok=True)
    md_path = os.path.join(out_dir, f"{name}.md")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(markdown(summaries))
    png_path = plot(folders, summaries, os.path.join(out_dir, f"{name}.png"))
    print(markdown(summaries))
    return {"png": png_path, "md": md_path}


if __name__ == "__main__":
    fire.Fire(learning_report, serialize=lambda _: None)
