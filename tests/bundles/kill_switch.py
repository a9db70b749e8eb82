"""Test-only handler for the crash tests: the training process SIGKILLs itself mid-epoch or in the middle of a save.

``test_reliability.py`` appends it to ``train#handlers`` with an overlay and puts this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import signal

import torch
from ignite.engine import Engine, Events

__all__ = ["KillSwitch"]


class KillSwitch:
    """SIGKILL this process at ``iteration`` (mid-epoch), or half way through writing ``checkpoint_epoch=<epoch>.pt``.

    Args:
        iteration: kill after this iteration completes (``None``: not mid-epoch).
        save_epoch: kill half way through writing this epoch's checkpoint (``None``: not during a save).
    """

    def __init__(self, iteration: int | None = None, save_epoch: int | None = None) -> None:
        self.iteration, self.save_epoch = iteration, save_epoch

    def attach(self, engine: Engine) -> None:
        if self.iteration is not None:
            engine.add_event_handler(Events.ITERATION_COMPLETED(once=self.iteration), self._kill)
        if self.save_epoch is not None:
            real_save, target = torch.save, f"checkpoint_epoch={self.save_epoch}.pt"

            def save_then_die(obj, f, *args, **kwargs):
                name = getattr(f, "name", str(f))
                if not str(name).endswith(target):
                    return real_save(obj, f, *args, **kwargs)
                real_save(obj, f, *args, **kwargs)
                f.flush()
                os.truncate(f.fileno(), os.fstat(f.fileno()).st_size // 2)  # half written ...
                self._kill()  # ... when the process dies

            torch.save = save_then_die

    @staticmethod
    def _kill(*_: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)
