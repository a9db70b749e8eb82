"""Measure a bundle's stages: step time against a plain PyTorch loop, where the time goes, data pipeline, memory.

Usage (from the repository root)::

    python tools/benchmark.py bundles/rotation                               # demo overlay, stages 1,2,3
    python tools/benchmark.py bundles/byol --stages 3 --iterations 200 --output_json /tmp/byol.json

For each stage, in one process and on the same networks, losses and optimizers:

* the bundle's own trainer (Ignite, MONAI transforms, every handler of the bundle) runs ``chunk`` iterations, then
  the plain loop of ``tools/plain_loop.py`` (no Ignite, no transforms, preloaded tensors) runs ``chunk`` iterations,
  alternately until both ran ``iterations`` (the first ``warmup`` of each are not counted): the load of the machine
  affects both alike. It prints ``ratio bundle/plain: X.XX`` per stage, and the slowest stage's ratio on the last
  such line;
* the step time (data loading included: from fetching the batch to the end of the iteration's handlers), its
  spread (10th and 90th percentile), samples (cubes) per second, and its split into data wait, forward (the task's
  forward pass), critic steps, generator loss + backward + optimizer step, and handlers;
* the data pipeline's samples per second with the model removed (the bundle's training loader alone) and how many
  times what the trainer consumes it supplies;
* peak memory (RSS on CPU, CUDA max allocated on GPU) and the growth of RSS between the first counted iteration and
  the last.

Stages run with ``handoff_components: []`` (timing does not depend on the weights), no validation, into a temporary
``output_dir``. Timings on 2 shared cores vary with other load: the report records the load average before and after.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict

import fire
import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow
from monai.engines.utils import IterationEvents

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plain_loop import PlainLoop  # noqa: E402
from pretrain import as_list, stage_config_files  # noqa: E402

from common.engines import UnitedEvents, prepare_ssl_batch, unwrap  # noqa: E402

PHASES = ("data", "forward", "critic", "generator", "handlers")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def _reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak RSS (VmHWM) of this process
    except OSError:
        pass


def _peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


class StepTimer:
    """Per-iteration timestamps at the trainer's events: the phases of every iteration."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self._marks: dict[str, float] = {}

    def attach(self, engine) -> None:
        marks = {
            Events.GET_BATCH_STARTED: "start", Events.GET_BATCH_COMPLETED: "batch",
            IterationEvents.FORWARD_COMPLETED: "forward", UnitedEvents.CRITIC_COMPLETED: "critic",
            IterationEvents.MODEL_COMPLETED: "model",
        }  # fmt: skip
        for event, name in marks.items():
            engine.add_event_handler(event, self._mark, name)
        # registered when the run starts, so it runs after every handler of ITERATION_COMPLETED
        engine.add_event_handler(Events.STARTED, lambda e: e.add_event_handler(Events.ITERATION_COMPLETED, self._end))

    def _mark(self, engine, name: str) -> None:
        self._marks[name] = time.perf_counter()

    def _end(self, engine) -> None:
        m, end = self._marks, time.perf_counter()
        self.steps.append(
            {
                "total": end - m["start"], "data": m["batch"] - m["start"], "forward": m["forward"] - m["batch"],
                "critic": m["critic"] - m["forward"], "generator": m["model"] - m["critic"], "handlers": end - m["model"],
                "rss_mb": _rss_mb(),
            }
        )  # fmt: skip


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _samples(batch: dict) -> int:
    return int(batch["image"].shape[0])


def _data_pipeline(loader, batches: int) -> float:
    """Samples per second of the training loader alone."""
    count, start, done = 0, time.perf_counter(), 0
    while done < batches:
        for batch in loader:
            count += _samples(batch)
            done += 1
            if done >= batches:
                break
    return count / (time.perf_counter() - start)


def benchmark_stage(bundle_dir: str, stage: str, overlays: list[str], output_dir: str, iterations: int, warmup: int,
                    chunk: int, **overrides: object) -> dict:  # fmt: skip
    """Benchmark one stage; see the module docstring."""
    configs = os.path.join(bundle_dir, "configs")
    overrides = {
        "output_dir": output_dir, "handoff_components": [], "validate#dataset#data": [], "progress_bar": False,
        "epoch_length": chunk, "max_epochs": (iterations + warmup + chunk - 1) // chunk, "save_interval": 0, **overrides,
    }  # fmt: skip
    workflow = ConfigWorkflow(
        config_file=stage_config_files(bundle_dir, stage, overlays), meta_file=os.path.join(configs, "metadata.json"),
        logging_file=os.path.join(configs, "logging.conf"), workflow_type="train", bundle_root=bundle_dir, **overrides,
    )  # fmt: skip
    workflow.initialize()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    loader = workflow.parser.get_parsed_content("train#dataloader")
    device = trainer.state.device
    preloaded = []
    for batch in loader:
        preloaded.append(prepare_ssl_batch(batch, device))
        if len(preloaded) >= 8:
            break
    plain = PlainLoop(
        unwrap(trainer.network), trainer.objective, trainer.optimizer, trainer.critic_optimizer, trainer.critic_steps,
        trainer.generator_interval, preloaded,
    )  # fmt: skip
    plain_times: list[float] = []
    timer = StepTimer()
    timer.attach(trainer)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: plain_times.extend(plain.step() for _ in range(chunk)))
    _reset_peak_memory()
    start = time.perf_counter()
    workflow.run()
    wall = time.perf_counter() - start
    peak = _peak_memory_mb()
    workflow.finalize()
    steps = timer.steps[warmup : warmup + iterations]
    plain_counted = plain_times[warmup : warmup + iterations]
    step = statistics.median(s["total"] for s in steps)
    plain_step = statistics.median(plain_counted)
    per_step = _samples(preloaded[0])
    pipeline = _data_pipeline(loader, min(20, max(3, iterations // 2)))
    split = {p: statistics.median(s[p] for s in steps) for p in PHASES}
    return {
        "iterations": len(steps),
        "step_seconds": {"median": round(step, 4), "p10": round(_quantile([s["total"] for s in steps], 0.1), 4),
                         "p90": round(_quantile([s["total"] for s in steps], 0.9), 4)},  # fmt: skip
        "plain_step_seconds": {"median": round(plain_step, 4), "p10": round(_quantile(plain_counted, 0.1), 4),
                               "p90": round(_quantile(plain_counted, 0.9), 4)},  # fmt: skip
        "ratio_bundle_over_plain": round(step / plain_step, 3),
        "samples_per_second": round(per_step / step, 2),
        "split_seconds": {k: round(v, 4) for k, v in split.items()},
        "data_pipeline_samples_per_second": round(pipeline, 1),
        "data_supply_over_consumption": round(pipeline / (per_step / step), 2),
        "peak_memory_mb": round(peak, 1),
        "rss_growth_percent": round(100 * (steps[-1]["rss_mb"] / steps[0]["rss_mb"] - 1), 2),
        "cubes_per_step": per_step,
        "wall_seconds": round(wall, 1),
        "parameters": {
            k: sum(p.numel() for p in m.parameters()) for k, m in unwrap(trainer.network).components().items()
        } | ({"adversary": sum(p.numel() for p in trainer.adversary.parameters())} if trainer.adversary is not None else {}),
    }


def benchmark(
    bundle_dir: str, overlays: str = "demo", stages: str = "1,2,3", iterations: int = 60, warmup: int = 5,
    chunk: int = 5, output_json: str | None = None, **overrides: object,
) -> dict:
    """Benchmark the stages of a bundle and print the report (see the module docstring).

    Args:
        bundle_dir: the bundle folder.
        overlays: overlays after the stage overlay (``demo``, ``smoke``, a path...).
        stages: stages to measure, e.g. ``"1,2,3"`` or ``"3"``.
        iterations: counted iterations of each loop per stage.
        warmup: iterations of each loop not counted.
        chunk: iterations of one loop before switching to the other.
        output_json: also write the report there.
        overrides: bundle overrides for every stage (``--base_channels 32``, ``--roi_size "[64,64,32]"``...).

    Returns:
        The report.
    """
    report: dict = {
        "bundle": os.path.normpath(bundle_dir), "overlays": as_list(overlays), "overrides": {k: str(v) for k, v in overrides.items()},
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                    "torch": torch.__version__, "cuda": torch.cuda.is_available(), "load_average_before": os.getloadavg()},
        "stages": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="united-bench-") as output_dir:
        for stage in [f"stage{int(s)}" for s in as_list(stages)]:
            result = benchmark_stage(bundle_dir, stage, as_list(overlays), os.path.join(output_dir, stage), iterations,
                                     warmup, chunk, **overrides)  # fmt: skip
            report["stages"][stage] = result
            print(
                f"{stage}: bundle {result['step_seconds']['median']:.3f} s/step "
                f"(p10 {result['step_seconds']['p10']:.3f}, p90 {result['step_seconds']['p90']:.3f}), plain "
                f"{result['plain_step_seconds']['median']:.3f} s/step, {result['samples_per_second']} cubes/s, data "
                f"pipeline x{result['data_supply_over_consumption']}, peak {result['peak_memory_mb']:.0f} MB, RSS growth "
                f"{result['rss_growth_percent']} %\n  split: " + ", ".join(f"{k} {v:.3f} s" for k, v in result["split_seconds"].items())
                + f"\nratio bundle/plain: {result['ratio_bundle_over_plain']:.2f} ({stage})", flush=True,
            )  # fmt: skip
    report["machine"]["load_average_after"] = os.getloadavg()
    print(f"load average before {report['machine']['load_average_before']}, after {report['machine']['load_average_after']}")
    slowest = max(report["stages"].values(), key=lambda r: r["step_seconds"]["median"])
    print(f"ratio bundle/plain: {slowest['ratio_bundle_over_plain']:.2f}")
    if output_json:
        with open(output_json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    return report


if __name__ == "__main__":
    fire.Fire(benchmark, serialize=lambda _: None)
