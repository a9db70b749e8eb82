"""What the console shows while a stage trains: a progress bar per epoch and one short line per epoch.

Everything else that is logged (Ignite's engine messages, MONAI's per-epoch metric dumps, checkpoint saves) goes to
``<stage_dir>/train.log`` only; ``verbose`` brings it back to the console. Warnings and errors always reach the
console.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from ignite.engine import Engine, Events

__all__ = ["CONSOLE_LOGGERS", "EpochLine", "setup_logging"]

#: Loggers whose INFO messages the console keeps (prefixes): epoch lines, hand-off, guard, export, summary, resume.
CONSOLE_LOGGERS = (
    "united.progress",
    "common.handlers.stage_handoff",
    "common.handlers.stage_guard",
    "common.handlers.stage_checkpoint",
    "common.handlers.component_exporter",
    "common.handlers.learning_summary",
)
LOG_FILE = "train.log"
_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


class _ConsoleFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.startswith(CONSOLE_LOGGERS)


class _StageFileHandler(logging.FileHandler):
    """The file handler :func:`setup_logging` adds (so that the next stage in the same process can replace it)."""


def _console_handlers() -> list[logging.Handler]:
    return [
        h for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        and getattr(h, "stream", None) in (sys.stdout, sys.stderr)
    ]  # fmt: skip


def setup_logging(stage_dir: str, verbose: bool = False, rank0: bool = True) -> str | None:
    """Send every log record of this process to ``<stage_dir>/train.log`` and keep the console short.

    Call it in a bundle's ``initialize`` once the stage folder is known to be this run's (after the stage guard).
    A later call (the next stage in the same process) replaces the previous stage's log file.

    Args:
        stage_dir: the stage folder.
        verbose: keep every INFO message on the console as well.
        rank0: only rank 0 writes the log file; other ranks keep warnings only on the console.

    Returns:
        The log file's path, or ``None`` on ranks above 0.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StageFileHandler)]:
        root.removeHandler(handler)
        handler.close()
    for handler in _console_handlers():
        for f in [f for f in handler.filters if isinstance(f, _ConsoleFilter)]:
            handler.removeFilter(f)
        if not verbose:
            handler.addFilter(_ConsoleFilter())
        if not rank0:
            handler.setLevel(logging.WARNING)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    if not rank0:
        return None
    os.makedirs(stage_dir, exist_ok=True)
    path = os.path.join(stage_dir, LOG_FILE)
    handler = _StageFileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    return path


def _short(metrics: dict, prefix: str = "") -> str:
    parts = []
    if f"{prefix}loss" in metrics:
        parts.append(f"loss {metrics[f'{prefix}loss']:.4g}")
    terms = [(k[len(prefix) + 5 :], v) for k, v in metrics.items() if k.startswith(f"{prefix}loss_") and v != 0]
    if terms:
        parts.append("(" + ", ".join(f"{k} {v:.4g}" for k, v in terms) + ")")
    parts += [f"{k[len(prefix) + 4 :]} {v:.3g}" for k, v in metrics.items() if k.startswith(f"{prefix}dis_")]
    return " ".join(parts)


class EpochLine:
    """Log one short line per epoch (logger ``united.progress``): training means, validation means, time.

    Example: ``epoch 3/20: loss 2.071 (dis 2.05, res 0.0021) accuracy 0.31 | validation loss 2.1 accuracy 0.25 | 4.2 s``.

    Args:
        evaluator: the validation engine, whose latest metrics are appended (``None``: training only).
    """

    def __init__(self, evaluator: Engine | None = None) -> None:
        self.evaluator = evaluator
        self.logger = logging.getLogger("united.progress")
        self._start = time.perf_counter()

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _started(self) -> None:
        self._start = time.perf_counter()

    def __call__(self, engine: Engine) -> None:
        line = f"epoch {engine.state.epoch}/{engine.state.max_epochs}: {_short(engine.state.metrics)}"
        evaluator = self.evaluator
        if evaluator is not None and getattr(evaluator.state, "epoch", 0) == engine.state.epoch:
            line += f" | validation {_short(evaluator.state.metrics, 'val_')}"
        self.logger.info(f"{line} | {time.perf_counter() - self._start:.1f} s")
