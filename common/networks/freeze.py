"""Freezing components of a model before it is wrapped for distributed training."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from torch import nn

__all__ = ["freeze"]

logger = logging.getLogger(__name__)


def freeze(model: nn.Module, names: Sequence[str]) -> nn.Module:
    """Stop training the named components of ``model`` (``requires_grad=False``); the trainer keeps them in eval mode.

    Call it in a bundle's ``initialize`` on the bare ``network_def``, before ``network`` (possibly
    DistributedDataParallel) is built: DDP registers the parameters that require gradients when it is constructed.

    Args:
        model: e.g. a :class:`~common.networks.UnitedModel`.
        names: component names, e.g. ``["encoder"]`` (empty: nothing is frozen).

    Returns:
        ``model``.

    Raises:
        ValueError: a name is not a component of ``model`` (the message lists the components).
    """
    components = model.components() if hasattr(model, "components") else dict(model.named_children())
    unknown = [n for n in names if n not in components]
    if unknown:
        raise ValueError(f"cannot freeze {unknown}: the network's components are {sorted(components)}.")
    for name in names:
        components[name].requires_grad_(False)
        logger.info(f"frozen: {name} ({sum(p.numel() for p in components[name].parameters())} parameters)")
    return model
