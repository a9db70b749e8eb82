"""Momentum (EMA) copies of model components: build them frozen, update them, schedule their momentum.

MoCo's key encoder (He et al., "Momentum contrast for unsupervised visual representation learning", CVPR 2020),
BYOL's target network (Grill et al., "Bootstrap your own latent", NeurIPS 2020) and PCRL's teacher (Zhou et al.,
"Preservational learning improves self-supervised medical image models by reconstructing diverse contexts",
ICCV 2021) are exponential moving averages of the online network's *parameters*:
``target <- m * target + (1 - m) * online`` after every optimizer step.

Only parameters are averaged. A copy's BatchNorm running statistics come from its own forward passes: under
DistributedDataParallel the online parameters are identical on every rank after the gradient all-reduce, so the
averaged parameters agree across ranks too, while BatchNorm statistics are rank-local (for the copy as for the
online network), and copying the online buffers would not make them agree. Style after lightly's
``update_momentum`` and ``cosine_schedule`` (small free functions, not a mixin).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["cosine_schedule", "momentum_copy", "update_momentum", "update_momentum_copy"]


def momentum_copy(model: nn.Module, names: Sequence[str]) -> nn.ModuleDict:
    """A frozen deep copy of the named components of ``model`` (e.g. ``["encoder", "head"]``).

    Args:
        model: the unwrapped online model (e.g. :class:`~common.networks.UnitedModel`).
        names: attribute names of the components to copy.

    Returns:
        ``nn.ModuleDict`` of the copies, every parameter with ``requires_grad=False`` (the optimizer and
        DistributedDataParallel never see them; only :func:`update_momentum` changes them).

    Raises:
        ValueError: a named component does not exist on ``model``.
    """
    missing = [name for name in names if getattr(model, name, None) is None]
    if missing:
        raise ValueError(f"cannot build a momentum copy of {missing}: {type(model).__name__} has no such component.")
    copies = nn.ModuleDict({name: copy.deepcopy(getattr(model, name)) for name in names})
    return copies.requires_grad_(False)


@torch.no_grad()
def update_momentum(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``target <- momentum * target + (1 - momentum) * online``, parameter by parameter, in place.

    Buffers (BatchNorm running statistics) are left alone: see the module docstring.

    Args:
        target: the EMA copy.
        online: the module it follows (same architecture).
        momentum: in [0, 1]; 1 keeps ``target``, 0 copies ``online``.

    Raises:
        ValueError: ``momentum`` outside [0, 1], or the two modules' parameter names differ.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must lie in [0, 1], got {momentum}.")
    target_params = dict(target.named_parameters())
    online_params = dict(online.named_parameters())
    if target_params.keys() != online_params.keys():
        differing = sorted(set(target_params) ^ set(online_params))
        raise ValueError(f"momentum update: the target and online modules differ in parameters {differing[:5]}.")
    names = list(target_params)
    if not names:
        return
    targets = [target_params[n].data for n in names]
    sources = [online_params[n].detach().to(targets[i].dtype) for i, n in enumerate(names)]
    torch._foreach_mul_(targets, momentum)
    torch._foreach_add_(targets, sources, alpha=1.0 - momentum)


def update_momentum_copy(copies: nn.ModuleDict, model: nn.Module, momentum: float) -> None:
    """Update every copy of :func:`momentum_copy` from the component of ``model`` with the same name."""
    for name, target in copies.items():
        update_momentum(target, getattr(model, name), momentum)


def cosine_schedule(step: int, max_steps: int, start: float, end: float) -> float:
    """Cosine ramp from ``start`` (step 0) to ``end`` (step ``max_steps`` and after).

    BYOL's target momentum: ``tau_k = 1 - (1 - tau_base) * (cos(pi * k / K) + 1) / 2``, i.e. ``start = tau_base``
    (0.996), ``end = 1``.

    Args:
        step: the current step (>= 0).
        max_steps: the step at which ``end`` is reached (> 0).
        start: the value at step 0.
        end: the value at ``max_steps``.

    Raises:
        ValueError: negative ``step`` or non-positive ``max_steps``.
    """
    if step < 0 or max_steps <= 0:
        raise ValueError(f"need step >= 0 and max_steps > 0, got step={step}, max_steps={max_steps}.")
    if step >= max_steps:
        return float(end)
    return float(end - (end - start) * (math.cos(math.pi * step / max_steps) + 1.0) / 2.0)
