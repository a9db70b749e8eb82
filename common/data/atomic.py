"""Atomic file writes: a file appears complete under its final name, or not at all."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PARTIAL_PREFIX", "atomic_output"]

#: Name prefix of the temporary files written by :func:`atomic_output`.
PARTIAL_PREFIX = ".partial-"


@contextlib.contextmanager
def atomic_output(dest: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``dest`` that replaces ``dest`` only if the block succeeds.

    The temporary name keeps ``dest``'s file name as its ending (so writers that choose a format by
    extension, such as nibabel and ITK, still work). On error the temporary file is removed and
    ``dest`` is left as it was.

    Args:
        dest: the final path.

    Yields:
        The temporary path to write to.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f"{PARTIAL_PREFIX}{uuid.uuid4().hex[:12]}-{dest.name}"
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
