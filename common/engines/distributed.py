"""Small helpers for modules that are trained under torch.distributed without a DDP wrapper.

The adversary is updated with a gradient penalty (a double backward), which DistributedDataParallel does
not support; like StyleGAN2-ADA we keep it unwrapped, broadcast its initial weights from rank 0 and
average its gradients by hand.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["is_distributed", "broadcast_module", "average_gradients", "unwrap"]


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy ``module``'s parameters and buffers from rank ``src`` to every rank (no-op without a group)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src)


def average_gradients(module: nn.Module) -> None:
    """All-reduce and average the gradients of ``module`` across ranks (no-op without a group)."""
    if not is_distributed():
        return
    world = dist.get_world_size()
    for param in module.parameters():
        if param.grad is not None:
            dist.all_reduce(param.grad)
            param.grad.div_(world)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside (Distributed)DataParallel or ``torch.compile`` wrappers, or ``module`` itself."""
    while True:
        if isinstance(module, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod
        else:
            return module
