"""torch.distributed helpers: process-group set-up for the bundle configs, and modules trained without a DDP wrapper.

The adversary is updated with a gradient penalty (a double backward), which DistributedDataParallel does
not support; like StyleGAN2-ADA we keep it unwrapped, broadcast its initial weights from rank 0 and
average its gradients by hand. Task state (EMA copies, queues) is broadcast from rank 0 the same way.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "all_gather",
    "average_gradients",
    "broadcast_module",
    "destroy_distributed",
    "init_distributed",
    "is_distributed",
    "rank",
    "unwrap",
    "world_size",
]


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank, 0 without a process group."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes, 1 without a process group."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def init_distributed(backend: str | None = None) -> int:
    """Initialise the default process group from torchrun's environment, once; set this rank's CUDA device.

    The bundles' ``multi_gpu_train.yaml`` calls it as the first ``initialize`` step.

    Args:
        backend: ``nccl`` or ``gloo``; default: nccl with CUDA, gloo otherwise (CPU runs and tests).

    Returns:
        This process's rank.

    Raises:
        RuntimeError: the process was not started by ``torchrun`` (no ``RANK``/``WORLD_SIZE`` in the environment).
    """
    if not dist.is_initialized():
        missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise RuntimeError(
                f"multi_gpu_train.yaml needs torchrun (missing environment variables {missing}); launch with "
                "`torchrun --standalone --nproc_per_node=N -m monai.bundle run ...`."
            )
        dist.init_process_group(backend=backend or ("nccl" if torch.cuda.is_available() else "gloo"))
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return dist.get_rank()


def destroy_distributed() -> None:
    """Destroy the default process group when one exists (the bundles' ``finalize`` step)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


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


def all_gather(tensor: torch.Tensor, with_grad: bool = True) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank along dim 0, in rank order (``tensor`` itself without a group).

    Contrastive losses gather embeddings so that each rank sees every rank's negatives, and queues enqueue every
    rank's keys. With ``with_grad`` the gather is differentiable (``torch.distributed.nn.functional.all_gather``:
    its backward sums each slice's gradient on the rank that owns it), so a loss computed from the gathered tensor
    gives the gradients of the same loss computed in one process on the concatenated batch, divided by the world
    size once DistributedDataParallel averages them. Without ``with_grad`` (keys, queue entries) the result is
    detached.

    Shapes:
        ``(B, *F)`` on every rank (the same ``B``) -> ``(world_size * B, *F)``.
    """
    if not is_distributed():
        return tensor if with_grad else tensor.detach()
    if with_grad:
        from torch.distributed.nn.functional import all_gather as differentiable_all_gather

        return torch.cat(differentiable_all_gather(tensor.contiguous()), dim=0)
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.detach().contiguous())
    return torch.cat(parts, dim=0)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside (Distributed)DataParallel or ``torch.compile`` wrappers, or ``module`` itself."""
    while True:
        if isinstance(module, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod
        else:
            return module
