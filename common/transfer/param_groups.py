"""Optimizer parameter groups for fine-tuning: one learning rate, or layer-wise learning-rate decay.

Layer-wise decay (Clark et al., ELECTRA, ICLR 2020; Bao et al., BEiT, ICLR 2022) gives pretrained layers closer
to the input a smaller learning rate: new parameters (a task head, a re-initialised output layer, everything of
a randomly initialised network) train at ``lr``, the pretrained block nearest the output at ``lr * decay``, the
next at ``lr * decay ** 2``, down to the input. A *block* is a module path cut after its first numeric part
(``encoder.levels.2``, ``decoder.blocks.0``, ``swinViT.layers1.0``), or after two parts when it has none
(``decoder.out``, ``swinViT.patch_embed``); blocks are ordered as the modules are registered, which for the
Genesis U-Net and MONAI's networks is the order of the forward pass.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from torch import nn

__all__ = ["FINETUNE_MODES", "block_of", "param_groups"]

logger = logging.getLogger(__name__)

#: Fine-tuning modes: all parameters at one rate, layer-wise decay, or the head only (frozen encoder).
FINETUNE_MODES = ("full", "layerwise", "linear_probe")


def block_of(parameter_name: str) -> str:
    """The block a parameter belongs to: its module path cut after the first numeric part, else after two parts."""
    parts = parameter_name.split(".")[:-1]
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return ".".join(parts[:2])


def param_groups(
    network: nn.Module,
    lr: float,
    mode: str = "full",
    layer_decay: float = 1.0,
    pretrained: Collection[str] = (),
    weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """Parameter groups for ``torch.optim`` optimizers.

    Args:
        network: the bare target network (not DDP-wrapped: parameter names must not carry ``module.``).
        lr: the base learning rate (new parameters; every parameter in ``full`` mode).
        mode: ``full`` (one group), ``layerwise`` (decay per pretrained block) or ``linear_probe`` (one group; the
            frozen encoder's parameters do not require gradients and are left out).
        layer_decay: the per-block factor in ``layerwise`` mode, in (0, 1].
        pretrained: names of parameters holding pretrained values (from
            :meth:`~common.transfer.initialise.TransferReport.pretrained_parameters`).
        weight_decay: weight decay of every group.

    Returns:
        Groups ``{"params", "lr", "weight_decay", "name"}``; only parameters that require gradients appear.

    Raises:
        ValueError: unknown mode, a decay outside (0, 1], or no trainable parameter.
    """
    if mode not in FINETUNE_MODES:
        raise ValueError(f"finetune mode must be one of {FINETUNE_MODES}, got {mode!r}.")
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}.")
    trainable = [(n, p) for n, p in network.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(f"{type(network).__name__} has no trainable parameter.")
    if mode != "layerwise" or not pretrained:
        if mode == "layerwise":
            logger.warning("layer-wise learning rates: no pretrained parameter (random initialisation), one rate for all")
        return [{"params": [p for _, p in trainable], "lr": lr, "weight_decay": weight_decay, "name": "all"}]
    pretrained = set(pretrained)
    blocks: list[str] = []
    for name, _ in trainable:
        if name in pretrained and (block := block_of(name)) not in blocks:
            blocks.append(block)
    depth = {block: len(blocks) - i for i, block in enumerate(blocks)}  # the block nearest the output: depth 1
    groups: dict[int, list[nn.Parameter]] = {}
    for name, p in trainable:
        groups.setdefault(depth[block_of(name)] if name in pretrained else 0, []).append(p)
    result = [
        {"params": groups[d], "lr": lr * layer_decay**d, "weight_decay": weight_decay, "name": f"depth{d}"}
        for d in sorted(groups)
    ]
    logger.info(
        f"layer-wise learning rates: {len(blocks)} pretrained blocks, lr {lr:g} (new parameters) down to "
        f"{lr * layer_decay ** len(blocks):g} ({blocks[0]})"
    )
    return result
