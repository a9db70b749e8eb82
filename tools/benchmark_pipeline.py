"""The training data pipeline alone: loader choices and number of training volumes, measured on a bundle's config.

Usage (from the repository root)::

    python tools/benchmark_pipeline.py loaders bundles/rotation --output_json /tmp/loaders.json
    python tools/benchmark_pipeline.py volumes bundles/rotation --counts 2,4,8,16

Each measurement builds the bundle's stage-1 training dataset and loader with ``--overlays demo`` (the same
``train#dataset`` / ``train#dataloader`` objects the trainer gets, every deterministic transform cached by
``CacheDataset`` when ``cache_rate`` is 1) and reports:

* ``cache_seconds``: building the dataset (loading, resampling and caching the volumes);
* ``samples_per_second``: cubes per second over ``epochs`` full passes of the loader (the trainer's loop: a new
  iterator per epoch, so worker processes start again every epoch unless persistent), the first pass excluded;
* ``first_batch_seconds``: the wait for the first batch of a pass (worker start-up);
* ``rss_mb``: the process's RSS after caching (the cache lives in the main process; worker processes share it
  copy-on-write).

``loaders`` compares, at the demo's two volumes: ``DataLoader`` with ``num_workers`` 0 and 2 (persistent, the
bundles' setting with workers, and restarted every epoch), MONAI's
``ThreadDataLoader`` (``num_workers`` 0: transforms in one background thread, overlapping the model step), and no
cache (``cache_rate`` 0). ``volumes`` repeats the datalist's volumes to ``counts`` entries (the sample data has two
unlabeled volumes; repeated entries are cached separately, so time and memory scale as with distinct volumes).
Each measurement runs in its own child process so that RSS figures are its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import fire

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)

LOADERS = {
    "DataLoader, num_workers 0, cache": {"train#dataloader#_target_": "DataLoader", "num_workers": 0, "cache_rate": 1.0},
    "DataLoader, num_workers 2 (persistent), cache": {"train#dataloader#_target_": "DataLoader", "num_workers": 2, "cache_rate": 1.0},
    "DataLoader, num_workers 2 (restarted per epoch), cache": {"train#dataloader#_target_": "DataLoader", "num_workers": 2,
                                                              "train#dataloader#persistent_workers": False, "cache_rate": 1.0},
    "ThreadDataLoader, num_workers 0, cache": {"train#dataloader#_target_": "ThreadDataLoader", "num_workers": 0, "cache_rate": 1.0},
    "DataLoader, num_workers 0, no cache": {"train#dataloader#_target_": "DataLoader", "num_workers": 0, "cache_rate": 0.0},
}  # fmt: skip


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def measure(bundle_dir: str, overrides: str | dict = "{}", volumes: int = 0, epochs: int = 6, overlays: str = "demo") -> dict:
    """One loader configuration (``overrides`` as JSON); ``volumes`` > 0 repeats the datalist to that many entries."""
    from monai.bundle import ConfigWorkflow
    from pretrain import as_list, stage_config_files

    configs = os.path.join(bundle_dir, "configs")
    with tempfile.TemporaryDirectory(prefix="united-pipeline-") as output_dir:
        workflow = ConfigWorkflow(
            config_file=stage_config_files(bundle_dir, "stage1", as_list(overlays)),
            meta_file=os.path.join(configs, "metadata.json"), logging_file=os.path.join(configs, "logging.conf"),
            workflow_type="train", bundle_root=bundle_dir, output_dir=output_dir, progress_bar=False,
            **{"validate#dataset#data": [], **(json.loads(overrides) if isinstance(overrides, str) else overrides)},
        )  # fmt: skip
        if volumes:
            data = workflow.parser.get_parsed_content("train#dataset#data")
            workflow.parser["train#dataset#data"] = [data[i % len(data)] for i in range(int(volumes))]
        rss_start = _rss_mb()
        start = time.perf_counter()
        dataset = workflow.parser.get_parsed_content("train#dataset")
        cache_seconds = time.perf_counter() - start
        rss_cached = _rss_mb()
        loader = workflow.parser.get_parsed_content("train#dataloader")
        counted, elapsed, first = 0, 0.0, []
        for epoch in range(int(epochs)):
            start = time.perf_counter()
            mark = start
            for i, batch in enumerate(loader):
                if i == 0:
                    first.append(time.perf_counter() - mark)
                if epoch > 0:
                    counted += int(batch["image"].shape[0])
            if epoch > 0:
                elapsed += time.perf_counter() - start
    result = {
        "volumes": len(dataset), "cache_seconds": round(cache_seconds, 2), "samples_per_second": round(counted / elapsed, 1),
        "first_batch_seconds": round(sorted(first[1:] or first)[len(first[1:] or first) // 2], 3),
        "rss_mb": round(rss_cached, 1), "cache_rss_mb": round(rss_cached - rss_start, 1), "load_average": os.getloadavg(),
    }  # fmt: skip
    print("RESULT " + json.dumps(result), flush=True)
    return result


def _child(bundle_dir: str, overrides: dict, volumes: int, epochs: int, timeout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "measure", bundle_dir, f"--overrides={json.dumps(overrides)}",
           f"--volumes={volumes}", f"--epochs={epochs}"]  # fmt: skip
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout:.0f} s"}
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(lines[-1][7:]) if lines else {"error": (out.stderr.strip().splitlines() or ["no output"])[-1][:300]}


def _print(rows: dict[str, dict], consumption: float | None) -> None:
    print("| configuration | cubes/s supplied | supply / consumption | first batch s | cache s | cache RSS MB |\n|---|---|---|---|---|---|")
    for name, r in rows.items():
        if "error" in r:
            print(f"| {name} | {r['error']} | | | | |")
            continue
        ratio = f"x{r['samples_per_second'] / consumption:.1f}" if consumption else "-"
        print(f"| {name} | {r['samples_per_second']} | {ratio} | {r['first_batch_seconds']} | {r['cache_seconds']} | {r['cache_rss_mb']} |")


def loaders(bundle_dir: str, epochs: int = 6, consumption: float | None = None, timeout: float = 600,
            output_json: str | None = None) -> dict:  # fmt: skip
    """Every loader choice at the demo's volumes; ``consumption``: the trainer's cubes/s (``tools/benchmark.py``)."""
    rows = {name: _child(bundle_dir, o, 0, epochs, timeout) for name, o in LOADERS.items()}
    _print(rows, consumption)
    if output_json:
        with open(output_json, "w", encoding="utf-8") as f:
            json.dump({"bundle": bundle_dir, "consumption": consumption, "loaders": rows}, f, indent=2)
    return rows


def volumes(bundle_dir: str, counts: str = "2,4,8,16", loader: str = "DataLoader, num_workers 0, cache", epochs: int = 3,
            consumption: float | None = None, timeout: float = 600, output_json: str | None = None) -> dict:  # fmt: skip
    """One loader choice against the number of training volumes (repeated sample volumes)."""
    from pretrain import as_list

    rows = {f"{n} volumes, {loader}": _child(bundle_dir, LOADERS[loader], int(n), epochs, timeout) for n in as_list(counts)}
    _print(rows, consumption)
    if output_json:
        with open(output_json, "w", encoding="utf-8") as f:
            json.dump({"bundle": bundle_dir, "loader": loader, "volumes": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    fire.Fire({"measure": measure, "loaders": loaders, "volumes": volumes}, serialize=lambda _: None)
