"""Scaling of one training step with cube size and cubes per step, per stage, at a chosen network width.

Usage (from the repository root)::

    python tools/benchmark_scaling.py sweep bundles/rotation --output_json /tmp/scaling.json       # paper width
    python tools/benchmark_scaling.py measure bundles/rotation --stage 3 --roi_size 64,64,32 --cubes 2

``measure`` runs in its own process (so its peak RSS is its own): it builds the stage exactly as
``tools/benchmark.py`` does (the bundle's config with ``--overlays demo`` for the data grid, then the width overrides;
``handoff_components: []``), takes one real batch of ``cubes`` cubes from the bundle's loader, and times ``steps``
iterations of the plain loop of ``tools/plain_loop.py`` on it (the first is a warm-up). It reports the median step
time, the process's peak RSS during the steps, the RSS the steps added on top of the built model (activations,
gradients, optimizer state: what the step needs beyond the weights) and the parameter counts.

``sweep`` runs ``measure`` in a child process for every stage and every cube size (32^3, 64x64x32, 64^3, 96^3 at
``sweep_cubes`` cubes per step), then every cubes-per-step value at 32^3, and prints the tables with the growth
factor per doubling of voxels (or of cubes): ``(t2 / t1) ** (1 / log2(n2 / n1))``. A configuration that does not
finish within ``timeout`` seconds is reported as such, not estimated.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import fire

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)

PAPER_WIDTH = {"base_channels": 32, "critic_base_channels": 32, "head_conv_channels": 512, "head_hidden": 1024}
CUBE_SIZES = ((32, 32, 32), (64, 64, 32), (64, 64, 64), (96, 96, 96))


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


def measure(bundle_dir: str, stage: int = 1, roi_size: str | tuple = "32,32,32", cubes: int = 2, steps: int = 3,
            width: str = "paper", overlays: str = "demo", **extra: object) -> dict:  # fmt: skip
    """Time ``steps`` plain-loop iterations of one stage at one shape; prints and returns a JSON-able dict.

    ``extra``: further bundle overrides (e.g. ``--use_checkpoint True`` for SwinUNETR's activation checkpointing).
    """
    import torch
    from monai.bundle import ConfigWorkflow
    from plain_loop import PlainLoop
    from pretrain import as_list, stage_config_files

    from common.engines import unwrap

    roi = [int(v) for v in as_list(roi_size)]
    overrides: dict = {"roi_size": roi, "num_samples": int(cubes), "batch_size": 1, "handoff_components": [],
                       "validate#dataset#data": [], "progress_bar": False, "cache_rate": 1.0, "num_workers": 0}  # fmt: skip
    if width == "paper":
        overrides.update(PAPER_WIDTH)
    overrides.update(extra)
    configs = os.path.join(bundle_dir, "configs")
    with tempfile.TemporaryDirectory(prefix="united-scaling-") as output_dir:
        workflow = ConfigWorkflow(
            config_file=stage_config_files(bundle_dir, f"stage{int(stage)}", as_list(overlays)),
            meta_file=os.path.join(configs, "metadata.json"), logging_file=os.path.join(configs, "logging.conf"),
            workflow_type="train", bundle_root=bundle_dir, output_dir=output_dir, **overrides,
        )  # fmt: skip
        workflow.initialize()
        trainer = workflow.parser.get_parsed_content("train#trainer")
        batch = trainer.prepare_batch(next(iter(workflow.parser.get_parsed_content("train#dataloader"))), trainer.state.device)
        plain = PlainLoop(unwrap(trainer.network), trainer.objective, trainer.optimizer, trainer.critic_optimizer,
                          trainer.critic_steps, trainer.generator_interval, [batch])  # fmt: skip
        rss_before = _status_mb("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS: the steps' own peak
        times = [plain.step() for _ in range(int(steps))]
        peak = _status_mb("VmHWM")
        params = {k: sum(p.numel() for p in m.parameters()) for k, m in unwrap(trainer.network).components().items()}
        if trainer.adversary is not None:
            params["adversary"] = sum(p.numel() for p in trainer.adversary.parameters())
    result = {
        "stage": int(stage), "roi_size": roi, "cubes": int(cubes), "width": width,
        "step_seconds": round(statistics.median(times[1:] or times), 3), "warmup_seconds": round(times[0], 3),
        "peak_rss_mb": round(peak, 1), "step_rss_mb": round(peak - rss_before, 1), "parameters": params,
        "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(), "overrides": {k: str(v) for k, v in extra.items()},
    }  # fmt: skip
    print("RESULT " + json.dumps(result), flush=True)
    return result


def _child(bundle_dir: str, timeout: float, **kwargs: object) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "measure", bundle_dir] + [f"--{k}={v}" for k, v in kwargs.items()]
    start = time.perf_counter()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {**kwargs, "error": f"did not finish in {timeout:.0f} s"}
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        return {**kwargs, "error": (out.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return {**json.loads(lines[-1][len("RESULT ") :]), "wall_seconds": round(time.perf_counter() - start, 1)}


def _growth(rows: list[dict], size_of) -> list[str]:
    """Per row: the growth factor of step time and of step RSS per doubling of ``size_of(row)`` from the previous row."""
    out = ["-"]
    for prev, row in zip(rows, rows[1:]):
        if "error" in prev or "error" in row:
            out.append("-")
            continue
        doublings = math.log2(size_of(row) / size_of(prev))
        t = (row["step_seconds"] / prev["step_seconds"]) ** (1 / doublings)
        m = (max(row["step_rss_mb"], 1.0) / max(prev["step_rss_mb"], 1.0)) ** (1 / doublings)
        out.append(f"x{t:.2f} / x{m:.2f}")
    return out


def _table(rows: list[dict], label, size_of) -> str:
    lines = ["| stage | shape | cubes/step | step s | step RSS MB | peak RSS MB | growth per doubling (time / memory) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for stage in sorted({r["stage"] for r in rows}):
        group = [r for r in rows if r["stage"] == stage]
        for row, growth in zip(group, _growth(group, size_of)):
            if "error" in row:
                lines.append(f"| {stage} | {label(row)} | {row['cubes']} | {row['error']} | | | |")
            else:
                lines.append(f"| {stage} | {label(row)} | {row['cubes']} | {row['step_seconds']} | {row['step_rss_mb']} | "
                             f"{row['peak_rss_mb']} | {growth} |")  # fmt: skip
    return "\n".join(lines)


def sweep(bundle_dir: str, stages: str = "1,2,3", sweep_cubes: int = 2, batch_cubes: str = "2,8",
          width: str = "paper", steps: int = 3, timeout: float = 300, output_json: str | None = None) -> dict:  # fmt: skip
    """Every stage against cube size, then against cubes per step at 32^3 (see the module docstring)."""
    from pretrain import as_list

    voxels = lambda r: math.prod(r["roi_size"])  # noqa: E731
    shape = lambda r: "x".join(str(v) for v in r["roi_size"])  # noqa: E731
    report: dict = {"bundle": bundle_dir, "width": width, "load_average_before": os.getloadavg(), "cube_size": [], "cubes": []}
    for stage in as_list(stages):
        for roi in CUBE_SIZES:
            row = _child(bundle_dir, timeout, stage=stage, roi_size=",".join(map(str, roi)), cubes=sweep_cubes, steps=steps, width=width)
            report["cube_size"].append({**row, "stage": int(stage), "roi_size": list(roi), "cubes": sweep_cubes})
            print(json.dumps(report["cube_size"][-1]), flush=True)
        for cubes in as_list(batch_cubes):
            if int(cubes) == int(sweep_cubes):  # measured above, at 32^3
                report["cubes"].append(report["cube_size"][-len(CUBE_SIZES)])
                continue
            row = _child(bundle_dir, timeout, stage=stage, roi_size="32,32,32", cubes=cubes, steps=steps, width=width)
            report["cubes"].append({**row, "stage": int(stage), "roi_size": [32, 32, 32], "cubes": int(cubes)})
            print(json.dumps(report["cubes"][-1]), flush=True)
    report["load_average_after"] = os.getloadavg()
    print(_table(report["cube_size"], shape, voxels) + "\n\n" + _table(report["cubes"], shape, lambda r: r["cubes"]))
    if output_json:
        with open(output_json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    return report


if __name__ == "__main__":
    fire.Fire({"measure": measure, "sweep": sweep}, serialize=lambda _: None)
