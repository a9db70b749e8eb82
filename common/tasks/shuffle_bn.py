"""Grouped shuffle-BN: the key (teacher) network normalises its batch in random sub-batches.

MoCo (He et al., CVPR 2020, section 3.3) found that BatchNorm lets a contrastive model "cheat": the query and its
positive key are normalised with statistics of the same samples, and that shared signature identifies the positive
among negatives from other batches. MoCo's remedy, shuffle-BN, sends the key batch to the GPUs in a shuffled order,
so the key of a sample is normalised with the statistics of another subset than its query; it needs several
processes (DistributedDataParallel) and does nothing on one GPU or on CPU.

The replacement here works the same on one process and on many: each rank permutes its own key batch, splits it into
``groups`` random sub-batches and runs the key network on each sub-batch separately, so every key's BatchNorm
statistics come from a random subset of the rank's samples, unlike its query's (the whole local batch). It needs no
communication and no gathered images (PCRL's teacher returns whole feature maps). With per-sample normalisation
(instance or group norm) it changes nothing. PCRL's reference code does the same index shuffle on one process under
``nn.DataParallel``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["grouped_shuffle_forward"]

Outputs = torch.Tensor | Sequence[torch.Tensor]


def _take(outputs: Outputs, index: torch.Tensor) -> Outputs:
    if isinstance(outputs, torch.Tensor):
        return outputs.index_select(0, index)
    return type(outputs)(o.index_select(0, index) for o in outputs)  # type: ignore[call-arg]


def _cat(parts: list[Outputs]) -> Outputs:
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts, dim=0)  # type: ignore[arg-type]
    return type(parts[0])(torch.cat(level, dim=0) for level in zip(*parts))  # type: ignore[call-arg]


def grouped_shuffle_forward(
    fn: Callable[[torch.Tensor], Outputs], x: torch.Tensor, groups: int, generator: torch.Generator | None = None
) -> Outputs:
    """``fn(x)`` with BatchNorm statistics taken over random sub-batches; outputs in the original sample order.

    Args:
        fn: the key network, ``(n, *F) -> (n, *G)`` or a list/tuple of such tensors (e.g. an encoder's feature maps).
        x: the key batch ``(B, *F)``.
        groups: the number of sub-batches; clamped to ``B // 2`` so that each keeps at least two samples
            (``BatchNorm1d`` in a projection head needs more than one value per channel). 1 runs ``fn(x)`` as is.
        generator: random source of the permutation (default: torch's global generator).

    Returns:
        What ``fn`` returns, row ``i`` belonging to ``x[i]``.

    Raises:
        ValueError: ``groups < 1``.
    """
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}.")
    batch = x.shape[0]
    groups = min(groups, batch // 2)
    if groups <= 1:
        return fn(x)
    forward = torch.randperm(batch, generator=generator).to(x.device)
    backward = torch.argsort(forward)
    shuffled = x.index_select(0, forward)
    parts = [fn(chunk) for chunk in torch.tensor_split(shuffled, groups, dim=0)]
    return _take(_cat(parts), backward)
