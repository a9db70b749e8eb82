"""``<stage_dir>/metrics.jsonl``: every epoch's training and validation metrics, one JSON object per line.

The plots, the learning summary and the transfer tools read it; it needs neither TensorBoard nor a parser of its
event files. A line looks like ``{"epoch": 3, "iteration": 6, "split": "train", "loss": 2.07, "loss_dis": 2.07,
"dis_accuracy": 0.25, ...}``; validation lines have ``"split": "validation"`` and ``val_``-prefixed keys. After a
resumed crash an epoch may appear twice: the later line is the one that counts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from numbers import Real
from typing import Any

from ignite.engine import Engine, Events

__all__ = ["METRICS_LOG", "MetricsLog", "read_metrics_log"]

METRICS_LOG = "metrics.jsonl"


def read_metrics_log(stage_dir: str) -> list[dict[str, Any]]:
    """The lines of a stage's metrics log in epoch order, the last line winning per (epoch, split).

    Raises:
        FileNotFoundError: the stage folder has no ``metrics.jsonl`` (the message names it).
    """
    path = os.path.join(stage_dir, METRICS_LOG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: was {stage_dir} written by a United SSL stage?")
    latest: dict[tuple[int, str], dict[str, Any]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                latest[(record["epoch"], record["split"])] = record
    return [latest[k] for k in sorted(latest)]


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, Real) and not isinstance(v, bool)}


class MetricsLog:
    """Append the engine's epoch metrics to ``<stage_dir>/metrics.jsonl`` (attach on rank 0 only).

    Attach one instance to the trainer (``split="train"``) and one to the evaluator (``split="validation"``); the
    evaluator's lines carry the trainer's epoch (MONAI runs the evaluator with the global epoch).

    Args:
        stage_dir: the stage folder.
        split: ``"train"`` or ``"validation"``.
    """

    def __init__(self, stage_dir: str, split: str = "train") -> None:
        if split not in ("train", "validation"):
            raise ValueError(f"split must be 'train' or 'validation', got {split!r}.")
        self.stage_dir = stage_dir
        self.split = split

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        record = {"epoch": engine.state.epoch, "split": self.split}
        if self.split == "train":
            record["iteration"] = engine.state.iteration
        record.update(_numbers(engine.state.metrics))
        os.makedirs(self.stage_dir, exist_ok=True)
        with open(os.path.join(self.stage_dir, METRICS_LOG), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
