"""Chain the stages of a United bundle: stage 1, then 2, then 3, with the same overlays and overrides.

Usage (from the repository root)::

    python tools/pretrain.py bundles/rotation                       # paper-scale configs (GPU)
    python tools/pretrain.py bundles/rotation --overlays demo       # CPU demo on the sample CT data
    python tools/pretrain.py bundles/rotation --overlays demo --stages 2,3 --output_dir /tmp/run
    python tools/pretrain.py bundles/rotation --joint --overlays demo   # the non-stepwise baseline

Any other ``--id value`` is a bundle override passed to every stage (``--datalist my.json``,
``--train#trainer#max_epochs 5``). Each stage is the same workflow ``python -m monai.bundle run`` would run
with ``--config_file "['<bundle>/configs/train.yaml','<bundle>/configs/stage<k>.yaml', overlays...]"``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

import fire
from monai.bundle import ConfigWorkflow

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common.handlers import format_summaries, stage_summary
from plot_run import plot_run


def as_list(value: str | int | Sequence | None) -> list:
    """A CLI value as a list: ``"1,2"`` -> ``["1", "2"]``, ``3`` -> ``["3"]``, lists unchanged, ``None`` -> ``[]``."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [v for v in str(value).split(",") if v]


def stage_config_files(bundle_dir: str, stage: str, overlays: Sequence[str] = ()) -> list[str]:
    """``train.yaml``, the stage overlay and the named overlays (``demo`` -> ``configs/demo.yaml``, or a path)."""
    configs = os.path.join(bundle_dir, "configs")
    files = [os.path.join(configs, "train.yaml"), os.path.join(configs, f"{stage}.yaml")]
    for overlay in overlays:
        path = overlay if os.path.isfile(str(overlay)) else os.path.join(configs, f"{overlay}.yaml")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"overlay {overlay!r}: neither a file nor {path}.")
        files.append(path)
    for path in files:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"bundle config {path} not found (is {bundle_dir!r} a United bundle folder?).")
    return files


def run_stage(bundle_dir: str, stage: str, overlays: Sequence[str] = (), **overrides: object) -> str:
    """Run one stage in this process through :class:`~monai.bundle.ConfigWorkflow`; return its output folder."""
    configs = os.path.join(bundle_dir, "configs")
    workflow = ConfigWorkflow(
        config_file=stage_config_files(bundle_dir, stage, overlays),
        meta_file=os.path.join(configs, "metadata.json"),
        logging_file=os.path.join(configs, "logging.conf"),
        workflow_type="train",
        bundle_root=bundle_dir,
        **overrides,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow.parser.get_parsed_content("stage_dir")


def pretrain(
    bundle_dir: str, overlays: str | Sequence[str] = (), stages: str | Sequence[int] = "1,2,3", joint: bool = False,
    **overrides: object,
) -> dict[str, str]:
    """Run stages 1, 2 and 3 of a bundle in order (or the joint baseline) and print where the weights went.

    Args:
        bundle_dir: the bundle folder, e.g. ``bundles/rotation``.
        overlays: overlay names or paths applied after the stage overlay (``demo``, ``smoke``, ``my.yaml``).
        stages: stages to run, in order (``"1,2,3"``; ``"2,3"`` continues from an existing stage 1).
        joint: run ``joint.yaml`` (D+R+A from scratch) instead of the stages.
        overrides: bundle overrides passed to every stage.

    Returns:
        Output folder per stage name.
    """
    bundle_dir = os.path.normpath(bundle_dir)
    names = ["joint"] if joint else [f"stage{int(s)}" for s in as_list(stages)]
    outputs: dict[str, str] = {}
    for i, name in enumerate(names, start=1):
        print(f"\n=== {os.path.basename(bundle_dir)}: {name} ({i}/{len(names)}) ===", flush=True)
        start = time.perf_counter()
        outputs[name] = run_stage(bundle_dir, name, as_list(overlays), **overrides)
        print(f"=== {name} done in {time.perf_counter() - start:.0f} s: weights in {outputs[name]} ===", flush=True)
    print("\nExported weights:")
    for name, folder in outputs.items():
        files = sorted(f for f in os.listdir(folder) if f.endswith(".pt") and not f.startswith("checkpoint"))
        print(f"  {name}: {folder}/{{{','.join(files)}}}")
    print("\nWhat each stage learned (pretext metric: mean of the first / last 3 validations):")
    print(format_summaries([stage_summary(folder) for folder in outputs.values()]))
    print()
    plot_run(os.path.dirname(next(iter(outputs.values()))))
    return outputs


if __name__ == "__main__":
    fire.Fire(pretrain, serialize=lambda _: None)
