"""What running a stage in its folder means, decided before anything is written: new, resume, done, or refused.

A stage folder remembers how its run was made (``run.json``: a fingerprint of the settings and of the data). A
re-run with the same fingerprint resumes, or, when the stage already finished, says so and trains nothing. A run
with other data or settings is refused with the differences named, instead of silently resuming (and exporting) the
old run. ``overwrite`` starts the stage over.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from common.handlers.run_record import RUN_RECORD, _jsonable
from common.handlers.stage_checkpoint import checkpoints

__all__ = ["RESUMABLE_SETTINGS", "StageFolderError", "StageGuard", "data_fingerprint"]

#: Settings that may change between a run and its resumption without making it another run.
RESUMABLE_SETTINGS = frozenset(
    {
        "max_epochs", "num_workers", "cache_rate", "val_interval", "save_interval", "early_stop_patience", "amp",
        "critic_max_gap", "critic_patience", "critic_stop",
    }
)
#: What a stage writes into its folder (what ``overwrite`` removes; nothing else is touched).
STAGE_OUTPUTS = ("checkpoint_*.pt", "*.pt", RUN_RECORD, "metrics.jsonl", "components.json", "events.out.tfevents.*", ".partial-*")

logger = logging.getLogger(__name__)


class StageFolderError(SystemExit):
    """The stage folder holds another run: the message says what differs (exits with status 1, no traceback)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def _sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(_jsonable(value), sort_keys=True).encode()).hexdigest()[:16]


def data_fingerprint(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A fingerprint of a list of datalist entries: their files (absolute path and size) and other fields.

    Returns:
        ``{"entries": n, "hash": "..."}``.
    """
    described = []
    for entry in entries:
        item = {}
        for key, value in sorted(entry.items()):
            if isinstance(value, str) and os.path.exists(value):
                path = os.path.abspath(value)
                item[key] = [path, os.path.getsize(path) if os.path.isfile(path) else sorted(os.listdir(path))]
            else:
                item[key] = value
        described.append(item)
    return {"entries": len(entries), "hash": _sha(sorted(described, key=json.dumps))}


class StageGuard:
    """Check a stage folder against this run before training (``initialize``), and remember the verdict.

    Args:
        stage_dir: the stage folder.
        settings: the run's hyper-parameters (the bundle's ``run_settings``); those in :data:`RESUMABLE_SETTINGS`
            may change between a run and its resumption.
        data: the training entries (``train#dataset#data``).
        max_epochs: the epochs this run asks for.
        overwrite: remove what an earlier run wrote into ``stage_dir`` and start over.

    Attributes:
        status: after :meth:`check`: ``"new"``, ``"resume"`` or ``"done"``.
    """

    def __init__(
        self, stage_dir: str, settings: Mapping[str, Any], data: Sequence[Mapping[str, Any]], max_epochs: int, overwrite: bool = False
    ) -> None:
        self.stage_dir = stage_dir
        self.max_epochs = int(max_epochs)
        self.overwrite = bool(overwrite)
        compared = {k: v for k, v in settings.items() if k not in RESUMABLE_SETTINGS}
        self.fingerprint = {"settings": _sha(compared), "data": data_fingerprint(data), "compared": _jsonable(compared)}
        self.status = "unchecked"

    @property
    def needs_training(self) -> bool:
        """False when the stage is already done (the bundle's ``run`` then trains nothing)."""
        if self.status == "unchecked":
            raise RuntimeError("StageGuard.check() must run (in initialize) before the stage runs.")
        return self.status != "done"

    def _remove_outputs(self) -> None:
        removed = sorted({p for pattern in STAGE_OUTPUTS for p in glob.glob(os.path.join(self.stage_dir, pattern))})
        for path in removed:
            os.remove(path)
        logger.info(f"--overwrite: removed {len(removed)} files of the earlier run from {self.stage_dir}")

    def _differences(self, recorded: Mapping[str, Any]) -> list[str]:
        old = recorded.get("fingerprint", {})
        lines = []
        before, now = old.get("compared", {}), self.fingerprint["compared"]
        for key in sorted(set(before) | set(now)):
            if before.get(key, "<absent>") != now.get(key, "<absent>"):
                lines.append(f"{key}: {before.get(key, '<absent>')} -> {now.get(key, '<absent>')}")
        if old.get("data", {}).get("hash") != self.fingerprint["data"]["hash"]:
            lines.append(
                f"training data: {old.get('data', {}).get('entries', '?')} volumes -> {self.fingerprint['data']['entries']} "
                "volumes (different files or sizes)"
            )
        return lines

    def check(self) -> str:
        """Decide what this run does in its stage folder.

        Returns:
            ``"new"`` (nothing there), ``"resume"`` (an unfinished run with the same fingerprint) or ``"done"`` (the
            same run finished: nothing to train).

        Raises:
            StageFolderError: the folder holds a run with other data or settings (the message names them).
        """
        if self.overwrite and os.path.isdir(self.stage_dir):
            self._remove_outputs()
        record_path = os.path.join(self.stage_dir, RUN_RECORD)
        if not checkpoints(self.stage_dir):
            self.status = "new"
            return self.status
        recorded = json.load(open(record_path, encoding="utf-8")) if os.path.isfile(record_path) else {}
        if "fingerprint" not in recorded:
            logger.warning(f"{self.stage_dir} has checkpoints but no fingerprint in {RUN_RECORD}: resuming without checking")
            self.status = "resume"
            return self.status
        differences = self._differences(recorded)
        if differences:
            raise StageFolderError(
                f"{self.stage_dir} holds this stage of another run; refusing to resume it or to mix the two:\n  "
                + "\n  ".join(differences)
                + "\nUse another --output_dir, or pass --overwrite True to replace that run."
            )
        completed = recorded.get("completed")
        if completed and (completed.get("early_stopped") or completed.get("epoch", 0) >= self.max_epochs):
            how = (
                "early stopping; pass --overwrite True to train it again"
                if completed.get("early_stopped")
                else f"max_epochs={completed.get('max_epochs')}; raise max_epochs to continue it, or pass --overwrite True"
            )
            logger.info(
                f"this stage is already done in {self.stage_dir} (finished at epoch {completed.get('epoch')} by {how}): "
                "nothing to train."
            )
            self.status = "done"
        else:
            self.status = "resume"
        return self.status
