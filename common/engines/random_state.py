"""Every random state a training run draws from, as one checkpointable object, so that resuming is exact.

A run resumed from an epoch-boundary checkpoint makes the same random draws as the uninterrupted run only if it
restores, besides the networks and optimizers: torch's generators (data-loader shuffling and worker seeds, dropout),
NumPy's and Python's global generators, and the private ``RandomState`` of every random MONAI transform of the
training pipeline (MONAI seeds them once when the data loader is built; without workers they carry on across
epochs). This object gathers all of them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from monai.transforms import Randomizable

__all__ = ["RandomStates", "randomizable_transforms"]


def randomizable_transforms(transform: Any) -> list[Randomizable]:
    """The random transforms inside a transform tree, in a stable order (depth first, each once).

    Follows ``Compose``-like ``transforms`` lists and any attribute holding transforms (a composite's steps).
    """
    found: list[Randomizable] = []
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, Randomizable):
            found.append(obj)
        children: Iterable[Any] = []
        if isinstance(obj, (list, tuple)):
            children = obj
        elif callable(obj) and hasattr(obj, "__dict__"):
            children = [v for v in vars(obj).values() if _holds_transforms(v)]
        for child in children:
            visit(child)

    visit(transform)
    return found


def _holds_transforms(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_holds_transforms(v) for v in value)
    return callable(value) and hasattr(value, "__dict__") and type(value).__module__.split(".")[0] in ("monai", "common")


def _numpy_state(rs: np.random.RandomState) -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = rs.get_state(legacy=True)
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}


def _set_numpy_state(rs: np.random.RandomState, state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    rs.set_state(("MT19937", keys, state["pos"], state["has_gauss"], state["cached"]))


class RandomStates:
    """The random states of a run: torch (CPU and CUDA), NumPy, Python and the training transforms.

    Args:
        transform: the training dataset's transform (e.g. ``Compose``); ``None`` for none.
    """

    def __init__(self, transform: Any = None) -> None:
        self.transforms = randomizable_transforms(transform) if transform is not None else []

    def _transform_states(self) -> Iterator[np.random.RandomState]:
        return (t.R for t in self.transforms)

    def state_dict(self) -> dict[str, Any]:
        python_version, python_internal, python_gauss = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": _numpy_state(np.random.mtrand._rand),
            "python": {"version": python_version, "internal": list(python_internal), "gauss": python_gauss},
            "transforms": [_numpy_state(rs) for rs in self._transform_states()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["transforms"]) != len(self.transforms):
            raise ValueError(
                f"the checkpoint holds the random states of {len(state['transforms'])} random transforms, this training "
                f"pipeline has {len(self.transforms)}: was the pipeline changed since it was saved?"
            )
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        _set_numpy_state(np.random.mtrand._rand, state["numpy"])
        python = state["python"]
        random.setstate((python["version"], tuple(python["internal"]), python["gauss"]))
        for rs, saved in zip(self._transform_states(), state["transforms"]):
            _set_numpy_state(rs, saved)
