"""What a stage learned, in a few lines: the pretext metric against chance and the restoration loss, start to end.

Every demo ends with this summary so that a working run can be told from a broken one. It reads the stage folder
(``run.json`` for the method's ``learning_metric`` and ``learning_chance``, ``metrics.jsonl`` for the curves), so
it works for any method and for a run finished long ago.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ignite.engine import Engine, Events

from common.handlers.metrics_log import read_metrics_log
from common.handlers.run_record import read_run_record

__all__ = ["LearningSummary", "StageSummary", "format_summaries", "stage_summary"]

#: Absolute margin over chance that the last validations must clear to count as "above chance".
ABOVE_CHANCE_MARGIN = 0.05
#: Epochs averaged at the start and the end of a curve.
WINDOW = 3


@dataclass
class StageSummary:
    """Start and end of a stage's pretext metric and restoration loss (``None`` where the stage has none)."""

    stage: str
    epochs: int
    metric: str
    split: str
    first: float | None
    last: float | None
    best: float | None
    chance: float | None
    restoration_first: float | None
    restoration_last: float | None

    @property
    def verdict(self) -> str:
        """``above chance`` / ``at chance`` for metrics with a chance level, else whether the metric fell."""
        if self.last is None:
            return "no metric logged"
        if self.chance is not None:
            return "above chance" if self.last >= self.chance + ABOVE_CHANCE_MARGIN else "at chance"
        if self.first is not None and self.last < self.first:
            return f"fell {100 * (1 - self.last / self.first):.0f} %" if self.first else "fell"
        return "did not fall"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def stage_summary(stage_dir: str) -> StageSummary:
    """Summarise one stage folder.

    The metric is the run's ``learning_metric`` on the validation cubes (averaged over the first and the last
    :data:`WINDOW` validations), or the same metric on the training cubes when the run had no validation list.

    Raises:
        FileNotFoundError: the folder has no ``run.json`` or ``metrics.jsonl``.
    """
    record = read_run_record(stage_dir)
    settings: dict[str, Any] = record.get("settings", {})
    metric = settings.get("learning_metric") or "val_loss_dis"
    chance = settings.get("learning_chance")
    lines = read_metrics_log(stage_dir)
    validation = [r for r in lines if r["split"] == "validation" and metric in r]
    split, name = "validation", metric
    if not validation:  # no validation list: the training curve of the same metric
        split, name = "train", metric.removeprefix("val_")
        validation = [r for r in lines if r["split"] == "train" and name in r]
    values = [r[name] for r in validation]
    # the restoration loss on the validation cubes when there are any, whatever split the pretext metric came from
    restoration = [r["val_loss_res"] for r in lines if r["split"] == "validation" and r.get("val_loss_res")]
    if not restoration:
        restoration = [r["loss_res"] for r in lines if r["split"] == "train" and r.get("loss_res")]
    higher_is_better = chance is not None
    return StageSummary(
        stage=str(record.get("stage", "?")),
        epochs=max((r["epoch"] for r in lines), default=0),
        metric=name,
        split=split,
        first=_mean(values[:WINDOW]),
        last=_mean(values[-WINDOW:]),
        best=(max(values) if higher_is_better else min(values)) if values else None,
        chance=float(chance) if chance is not None else None,
        restoration_first=_mean(restoration[:WINDOW]),
        restoration_last=_mean(restoration[-WINDOW:]),
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_summaries(summaries: list[StageSummary]) -> str:
    """A small table: one line per stage."""
    header = f"{'stage':<7} {'epochs':>6}  {'metric (cubes)':<28} {'start':>7} {'end':>7} {'best':>7} {'chance':>7}  verdict          restoration start -> end"
    rows = [header]
    for s in summaries:
        restoration = (
            "-" if s.restoration_first is None else f"{_number(s.restoration_first)} -> {_number(s.restoration_last)}"
        )
        rows.append(
            f"{s.stage:<7} {s.epochs:>6}  {f'{s.metric} ({s.split})':<28} {_number(s.first):>7} {_number(s.last):>7} "
            f"{_number(s.best):>7} {_number(s.chance):>7}  {s.verdict:<16} {restoration}"
        )
    return "\n".join(rows)


class LearningSummary:
    """Log the stage's learning summary when training completes (attach on rank 0 only).

    Args:
        stage_dir: the stage folder (holding ``run.json`` and ``metrics.jsonl``).
    """

    def __init__(self, stage_dir: str) -> None:
        self.stage_dir = stage_dir
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        self.logger.info("what this stage learned:\n" + format_summaries([stage_summary(self.stage_dir)]))
