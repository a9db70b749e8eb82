"""A list of handlers that attaches as one: the slot through which a method adds its own handlers to a bundle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ignite.engine import Engine

__all__ = ["HandlerList"]


class HandlerList:
    """Attach every handler of a (possibly empty) list to the engine.

    The shared bundle template lists ``HandlerList(handlers=@method_handlers)`` in ``train#handlers``, so a method's
    own handlers (e.g. Deep Clustering's re-clustering) reach the trainer without changing the shared handler list,
    which MONAI Label edits by position.

    Args:
        handlers: objects with an ``attach(engine)`` method.
    """

    def __init__(self, handlers: Sequence[Any] = ()) -> None:
        bad = [type(h).__name__ for h in handlers if not callable(getattr(h, "attach", None))]
        if bad:
            raise TypeError(f"handlers must have an attach(engine) method; got {bad}.")
        self.handlers = list(handlers)

    def attach(self, engine: Engine) -> None:
        for handler in self.handlers:
            handler.attach(engine)
