"""The run record of a stage: ``<stage_dir>/run.json`` says how the stage's weights were made.

Transfer code rebuilds a pretrained network from it (the network settings of the run, not the bundle's
defaults), and people read it to know which seed, settings and library versions produced a folder.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
from collections.abc import Mapping
from typing import Any

from ignite.engine import Engine, Events

from common.data.atomic import atomic_output

__all__ = ["RUN_RECORD", "RunRecorder", "library_versions", "read_run_record"]

RUN_RECORD = "run.json"


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a stage's result depends on."""
    import ignite
    import monai
    import numpy
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "pytorch-ignite": ignite.__version__,
        "numpy": numpy.__version__,
    }


def _jsonable(value: Any) -> Any:
    """``value`` with tuples as lists and anything JSON cannot hold as its string form."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def read_run_record(stage_dir: str) -> dict[str, Any]:
    """The run record of a stage folder.

    Raises:
        FileNotFoundError: the folder has no ``run.json`` (the message names it).
    """
    path = os.path.join(stage_dir, RUN_RECORD)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: {stage_dir} is not the output folder of a United SSL stage.")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class RunRecorder:
    """Write ``<stage_dir>/run.json``: how the stage's weights were made, and whether it finished.

    Written when training starts (the stage, every hyper-parameter by config id after overrides, the seed, the
    command line, library versions and the stage guard's fingerprint of settings and data) and updated when it
    completes (epoch, iteration, whether early stopping ended it). Attach on rank 0 only.

    Args:
        stage_dir: the stage folder.
        stage: the stage name (``1``, ``2``, ``3`` or ``joint``).
        settings: the run's hyper-parameters by config id (a bundle's ``run_settings``), e.g.
            ``{"base_channels": 32, "roi_size": [64, 64, 64], ...}``.
        bundle: the bundle's name (its folder name).
        fingerprint: the :class:`~common.handlers.StageGuard`'s fingerprint of this run's settings and data.
    """

    def __init__(
        self, stage_dir: str, stage: int | str, settings: Mapping[str, Any], bundle: str = "", fingerprint: Mapping | None = None
    ) -> None:
        self.stage_dir = stage_dir
        self.record: dict[str, Any] = {
            "bundle": bundle,
            "stage": _jsonable(stage),
            "settings": _jsonable(dict(settings)),
            "seed": _jsonable(settings.get("seed")),
            "command": list(sys.argv),
            "versions": library_versions(),
        }
        if fingerprint is not None:
            self.record["fingerprint"] = _jsonable(dict(fingerprint))
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def _write(self) -> None:
        with atomic_output(os.path.join(self.stage_dir, RUN_RECORD)) as tmp:
            tmp.write_text(json.dumps(self.record, indent=2) + "\n", encoding="utf-8")

    def started(self, engine: Engine) -> None:
        self.record.pop("completed", None)
        self._write()

    def completed(self, engine: Engine) -> None:
        state = engine.state
        self.record["completed"] = {
            "epoch": state.epoch,
            "iteration": state.iteration,
            "max_epochs": state.max_epochs,
            "early_stopped": state.epoch < state.max_epochs,
        }
        self._write()

    __call__ = started
