"""Batch preparation for self-supervised batches (dicts of tensors, not ``(image, label)`` pairs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from monai.data import MetaTensor

__all__ = ["prepare_ssl_batch"]


def prepare_ssl_batch(
    batchdata: Mapping[str, Any], device: torch.device | str | None = None, non_blocking: bool = False, **kwargs: Any
) -> dict[str, Any]:
    """Move every tensor of a collated batch dict to ``device`` as a plain tensor; keep other values as they are.

    Args:
        batchdata: collated batch, e.g. ``{"image": (B, C, *S), "target": (B, C, *S), "label": (B,)}``.
        device: target device.
        non_blocking: passed to :meth:`torch.Tensor.to`.
        kwargs: further ``Tensor.to`` arguments (the engine's ``to_kwargs``).

    Returns:
        A new dict with the same keys.
    """
    if not isinstance(batchdata, Mapping):
        raise TypeError(f"self-supervised batches must be dicts, got {type(batchdata).__name__}.")
    if "image" not in batchdata:
        raise KeyError(f"batch has no 'image' key (keys: {sorted(batchdata)}).")
    out: dict[str, Any] = {}
    for key, value in batchdata.items():
        if isinstance(value, torch.Tensor):
            value = value.as_tensor() if isinstance(value, MetaTensor) else value
            value = value.to(device=device, non_blocking=non_blocking, **kwargs)
        out[key] = value
    return out
