"""Top-1 retrieval of the matching view: a representation-quality figure for two-view methods."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["top1_retrieval"]


@torch.no_grad()
def top1_retrieval(queries: torch.Tensor, keys: torch.Tensor) -> float:
    """The fraction of queries whose most similar key (cosine) is their own view's.

    Query ``i`` and key ``i`` embed two views of the same cube; every other key of the batch is a distractor, so
    chance is ``1 / B``. Logged as a task diagnostic (``dis_retrieval``, ``val_dis_retrieval`` on the validation
    cubes), it shows whether a contrastive or bootstrap method learns to tell cubes apart, where the loss alone
    (which depends on the queue, the temperature, the EMA target) does not. Ties go to the lowest index.

    Args:
        queries: ``(B, D)``.
        keys: ``(B, D)``.

    Returns:
        The top-1 retrieval accuracy in [0, 1].

    Raises:
        ValueError: shapes differ or are not ``(B, D)``.
    """
    if queries.ndim != 2 or queries.shape != keys.shape:
        raise ValueError(f"queries and keys must both be (B, D), got {tuple(queries.shape)} and {tuple(keys.shape)}.")
    similarity = F.normalize(queries.float(), dim=1) @ F.normalize(keys.float(), dim=1).T
    hits = similarity.argmax(dim=1) == torch.arange(queries.shape[0], device=queries.device)
    return float(hits.float().mean())
