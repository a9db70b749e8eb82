"""A per-epoch progress bar showing the running loss."""

from __future__ import annotations

from collections.abc import Sequence

from ignite.engine import Engine
from ignite.handlers import ProgressBar

__all__ = ["ProgressBarHandler"]


class ProgressBarHandler:
    """Attach ignite's tqdm :class:`~ignite.handlers.ProgressBar`, showing the listed output keys.

    Loss terms (``loss_*``) that are exactly 0.0 are the stage's inactive terms and are not shown.

    Args:
        output_keys: keys of ``engine.state.output`` to display (missing keys are skipped).
        persist: keep each epoch's bar on screen after it completes.
    """

    def __init__(self, output_keys: Sequence[str] = ("loss",), persist: bool = True) -> None:
        self.output_keys = tuple(output_keys)
        self.persist = persist

    def attach(self, engine: Engine) -> None:
        ProgressBar(persist=self.persist).attach(engine, output_transform=self._shown)

    def _shown(self, output) -> dict:
        return {
            k: output[k] for k in self.output_keys if k in output and not (k.startswith("loss_") and output[k] == 0.0)
        }
