"""Adapting a network's input convolutions to another channel count (1-channel CT weights -> 4-channel MRI).

The convolutions that read the raw input are found by running the network once and recording which
convolutions receive the input tensor itself, so any backbone works: the Genesis U-Net has one
(``encoder.levels.0.0.conv``), MONAI's SwinUNETR has three (the patch embedding and the first residual block's
two convolutions). Their weights are expanded so that an input whose channels all carry the same image gives
exactly the response of the original network to that image: ``w'[:, j] = sum_i w[:, i] / C_new``
(the same rule as timm's ``adapt_input_conv`` for 1 -> N channels).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

__all__ = ["expand_input_weight", "first_convolution", "input_convolutions", "adapt_input_channels"]

logger = logging.getLogger(__name__)


def expand_input_weight(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Convolution weights for ``in_channels`` inputs from weights for another input channel count.

    Args:
        weight: ``(C_out, C_in, *kernel)``.
        in_channels: the new ``C_in'``.

    Returns:
        ``(C_out, C_in', *kernel)`` with every new input channel ``sum_i weight[:, i] / C_in'``: on an input whose
        ``C_in'`` channels are equal, the convolution gives what the original gave on ``C_in`` equal channels.
    """
    if weight.ndim < 3:
        raise ValueError(f"expected convolution weights (C_out, C_in, *kernel), got shape {tuple(weight.shape)}.")
    if in_channels < 1:
        raise ValueError(f"in_channels must be positive, got {in_channels}.")
    summed = weight.sum(dim=1, keepdim=True) / in_channels
    return summed.expand(-1, in_channels, *weight.shape[2:]).clone()


def first_convolution(network: nn.Module) -> tuple[str, _ConvNd]:
    """The first convolution of ``network`` in registration order (its name and module).

    Raises:
        ValueError: the network has no convolution.
    """
    for name, module in network.named_modules():
        if isinstance(module, _ConvNd):
            return name, module
    raise ValueError(f"{type(network).__name__} has no convolution: cannot tell its input channels.")


def input_convolutions(network: nn.Module, spatial_size: Sequence[int], in_channels: int | None = None) -> list[str]:
    """Names of the convolutions of ``network`` that read its input tensor directly.

    Runs ``network`` once in eval mode without gradients on zeros of shape ``(1, in_channels, *spatial_size)``
    and records every convolution whose input is that very tensor.

    Args:
        network: any module taking one image tensor.
        spatial_size: a spatial size the network accepts (e.g. the task's ROI).
        in_channels: the network's current input channels (default: those of its first convolution).

    Raises:
        ValueError: no convolution reads the input directly (e.g. the network normalises it first).
    """
    if in_channels is None:
        in_channels = first_convolution(network)[1].in_channels
    x = torch.zeros(1, in_channels, *spatial_size, device=next(network.parameters()).device)
    found: list[str] = []
    hooks = [
        module.register_forward_pre_hook(lambda m, args, name=name: found.append(name) if args and args[0] is x else None)
        for name, module in network.named_modules()
        if isinstance(module, _ConvNd)
    ]
    was_training = network.training
    try:
        network.eval()
        with torch.no_grad():
            network(x)
    finally:
        for hook in hooks:
            hook.remove()
        network.train(was_training)
    if not found:
        raise ValueError(
            f"no convolution of {type(network).__name__} reads the input tensor directly, so its input channels "
            "cannot be adapted automatically."
        )
    return list(dict.fromkeys(found))


def adapt_input_channels(network: nn.Module, in_channels: int, spatial_size: Sequence[int]) -> list[str]:
    """Make ``network`` take ``in_channels`` input channels by expanding the weights of its input convolutions.

    Each convolution that reads the input gets weights from :func:`expand_input_weight`. Modules on the path to
    it (including ``network``) whose ``in_channels`` attribute held the old count are updated, because some
    networks check it (e.g. :class:`~common.networks.GenesisEncoder`).

    Args:
        network: the network, e.g. built with the pretraining's channel count (1 for CT).
        in_channels: the target task's input channels (e.g. 4 MRI sequences).
        spatial_size: a spatial size the network accepts.

    Returns:
        The adapted convolutions' names (empty when the channel count already matched).

    Raises:
        ValueError: a convolution reading the input is grouped, or the input convolutions disagree on their channels.
    """
    names = input_convolutions(network, spatial_size)
    convs = {name: network.get_submodule(name) for name in names}
    counts = {conv.in_channels for conv in convs.values()}
    if len(counts) != 1:
        raise ValueError(f"the input convolutions {names} read different channel counts {sorted(counts)}.")
    old = counts.pop()
    if old == in_channels:
        return []
    for name, conv in convs.items():
        if conv.groups != 1:
            raise ValueError(f"cannot adapt the grouped input convolution {name!r} (groups={conv.groups}).")
        conv.weight = nn.Parameter(expand_input_weight(conv.weight.detach(), in_channels))
        conv.in_channels = in_channels
        parts = name.split(".")
        for depth in range(len(parts)):
            owner = network.get_submodule(".".join(parts[:depth]))
            if isinstance(getattr(owner, "in_channels", None), int) and owner.in_channels == old:
                owner.in_channels = in_channels
    logger.info(
        f"input channels adapted from {old} to {in_channels} in {names}: weights summed over the pretrained input "
        f"channels and divided by {in_channels}"
    )
    return names
