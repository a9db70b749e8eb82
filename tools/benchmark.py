"""Time the stages of a bundle: wall time, seconds per iteration, peak memory, and the machine's load.

Usage (from the repository root)::

    python tools/benchmark.py bundles/rotation --overlays demo            # the README demo, all three stages
    python tools/benchmark.py bundles/rotation --overlays smoke --stages 1 --output_json /tmp/bench.json

Every stage runs in this process, as ``tools/pretrain.py`` runs it, into a temporary ``output_dir`` unless one
is given. Timings on 2 shared cores vary 2-12x with other load, so the report records the load average before
and after; compare only runs on a quiet machine.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import tempfile
import time

import fire
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pretrain import as_list, run_stage  # noqa: E402


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def benchmark(
    bundle_dir: str, overlays: str = "demo", stages: str = "1,2,3", output_dir: str | None = None,
    output_json: str | None = None, **overrides: object,
) -> dict:
    """Run the stages and report their cost.

    Args:
        bundle_dir: the bundle folder.
        overlays: overlays after the stage overlay (``demo``, ``smoke``...).
        stages: stages to run, in order.
        output_dir: where the stages write (default: a temporary folder, removed afterwards).
        output_json: also write the report there.
        overrides: bundle overrides for every stage.

    Returns:
        The report: per stage, wall seconds, iterations, seconds per iteration and parameter counts; the total
        wall time, the peak RSS and the machine (CPUs, threads, load average before and after).
    """
    temporary = None if output_dir else tempfile.TemporaryDirectory(prefix="united-bench-")
    output_dir = output_dir or temporary.name
    report: dict = {
        "bundle": os.path.normpath(bundle_dir),
        "overlays": as_list(overlays),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "load_average_before": os.getloadavg(),
        },
        "stages": {},
    }
    start_all = time.perf_counter()
    for stage in [f"stage{int(s)}" for s in as_list(stages)]:
        start = time.perf_counter()
        workflow_dir = run_stage(bundle_dir, stage, as_list(overlays), output_dir=output_dir, **overrides)
        wall = time.perf_counter() - start
        manifest = json.load(open(os.path.join(workflow_dir, "components.json")))
        iterations = manifest["iteration"]
        report["stages"][stage] = {
            "wall_seconds": round(wall, 2),
            "iterations": iterations,
            "seconds_per_iteration_incl_validation_and_io": round(wall / max(iterations, 1), 3),
            "parameters": {k: v["parameters"] for k, v in manifest["components"].items()},
        }
        print(f"{stage}: {wall:.1f} s, {iterations} iterations", flush=True)
    report["total_wall_seconds"] = round(time.perf_counter() - start_all, 2)
    report["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    report["machine"]["load_average_after"] = os.getloadavg()
    if temporary is not None:
        temporary.cleanup()
    text = json.dumps(report, indent=2)
    print(text)
    if output_json:
        with open(output_json, "w") as f:
            f.write(text + "\n")
    return report


if __name__ == "__main__":
    fire.Fire(benchmark, serialize=lambda _: None)
