"""A first-in first-out queue of embeddings: the negatives of MoCo and PCRL's memory."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FeatureQueue"]


class FeatureQueue(nn.Module):
    """A ring buffer of ``size`` embeddings of ``dim`` features (He et al., MoCo, CVPR 2020, section 3.2).

    :meth:`enqueue` writes a batch of keys over the oldest entries, wrapping around the end, so any batch size up to
    ``size`` works (MoCo's reference code needs ``size`` divisible by the batch; this one does not). The entries start
    as random unit vectors, as in MoCo. The contents and the write position are buffers: they are saved in the
    checkpoint and restored exactly on resume. Feed it the keys of *every* rank (``all_gather`` them first) so that
    the queues of all ranks stay equal.

    Args:
        size: number of entries ``K`` (MoCo v2: 65 536; PCRL: 16 384; keep it below the number of distinct cubes).
        dim: embedding size ``D``.

    Attributes:
        features: ``(K, D)`` the entries, in storage order (``features[pointer]`` is the oldest).
        pointer: the next write position (a long scalar).
        seen: how many keys were enqueued in total (a long scalar).
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if int(size) != size or size < 1 or int(dim) != dim or dim < 1:
            raise ValueError(f"queue size and dim must be positive integers, got size={size!r}, dim={dim!r}.")
        self.size, self.dim = int(size), int(dim)
        self.register_buffer("features", F.normalize(torch.randn(self.size, self.dim), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def check_batch(self, global_batch: int) -> None:
        """Raise when one step's keys (of all ranks) would not fit: a batch must not overwrite its own keys.

        Raises:
            ValueError: ``global_batch`` exceeds the queue size.
        """
        if global_batch > self.size:
            raise ValueError(
                f"the queue holds {self.size} keys but one step enqueues {global_batch} (the global batch: cubes per "
                "rank x ranks); raise queue_size to at least the global batch (MoCo: many times it)."
            )

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` ``(N, D)`` over the ``N`` oldest entries (wrapping around), in order.

        Raises:
            ValueError: wrong feature size, or more keys than the queue holds.
        """
        if keys.ndim != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"queue of dim {self.dim} expects keys (N, {self.dim}), got {tuple(keys.shape)}.")
        n = keys.shape[0]
        self.check_batch(n)
        index = (self.pointer + torch.arange(n, device=self.features.device)) % self.size
        self.features.index_copy_(0, index, keys.detach().to(self.features.dtype))
        self.pointer.copy_((self.pointer + n) % self.size)
        self.seen += n

    def ordered(self) -> torch.Tensor:
        """The entries from the oldest to the newest, ``(K, D)`` (a copy; for inspection and tests)."""
        return torch.roll(self.features, shifts=-int(self.pointer), dims=0).clone()
