"""The output of one training or validation iteration: a read-only mapping of floats."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

__all__ = ["IterationOutput"]


class IterationOutput(Mapping):
    """``loss``, ``loss_dis``, ``loss_res``, ``loss_adv``, ``loss_critic``, diagnostics and learning rates, as floats.

    A mapping, not a ``dict`` and not MONAI's decollated list of per-sample dicts: an iteration of the United
    trainer has no per-sample outputs. MONAI's ``from_engine(["loss"])``-based defaults (the iteration log of
    ``--tracking mlflow``) then skip the iteration instead of failing on a tuple; the epoch means of every key reach
    them through ``engine.state.metrics``. Handlers that need a ``dict`` call ``dict(output)``.
    """

    def __init__(self, values: Mapping[str, float]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> float:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"IterationOutput({self._values!r})"
