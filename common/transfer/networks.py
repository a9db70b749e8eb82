"""Target networks rebuilt from a pretrained bundle's metadata: segmentation (the whole image-to-image network) and
classification (its encoder component plus a new head), for any backbone the bundle declares."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.bundle import ConfigParser
from torch import nn

from common.networks import ClassificationHead
from common.transfer.classifier import EncoderClassifier, deepest_feature
from common.transfer.input_channels import adapt_input_channels, first_convolution
from common.transfer.ssl_bundle import SSLBundle, read_ssl_bundle

__all__ = ["build_backbone", "build_segmentation_network", "build_classification_network", "as_bundle"]

logger = logging.getLogger(__name__)


def as_bundle(bundle: SSLBundle | str | os.PathLike) -> SSLBundle:
    """An :class:`SSLBundle` from itself or from a bundle folder."""
    return bundle if isinstance(bundle, SSLBundle) else read_ssl_bundle(bundle)


def build_backbone(
    bundle: SSLBundle | str | os.PathLike, settings: Mapping[str, Any] | None = None, out_channels: int | None = None
) -> nn.Module:
    """Instantiate a pretrained bundle's image-to-image network with a run's settings.

    The bundle's ``network_config`` is parsed with ``bundle_root`` set to the bundle; every key of ``settings``
    that is an id of that config overrides it (the others, e.g. ``seed`` or loss weights, are ignored); then
    ``out_channels_id`` is set to ``out_channels`` and ``out_activation_id`` to ``None`` (the task's loss applies
    its own activation).

    Args:
        bundle: the pretrained bundle (or its folder).
        settings: config ids and values, typically a stage's ``run.json`` ``settings``.
        out_channels: the task's output channels (``None`` keeps the config's).

    Returns:
        The network (random weights), e.g. a :class:`~common.networks.Restorer` for the Rotation bundle.
    """
    bundle = as_bundle(bundle)
    parser = ConfigParser()
    parser.read_config(bundle.network_config)
    parser["bundle_root"] = bundle.path
    if bundle.network_id not in parser:
        raise KeyError(f"{bundle.network_config} has no id {bundle.network_id!r} (united_ssl.network_id of {bundle.name}).")
    applied = {k: v for k, v in dict(settings or {}).items() if k in parser}
    for key, value in applied.items():
        parser[key] = value
    if out_channels is not None:
        if bundle.out_channels_id not in parser:
            raise KeyError(f"{bundle.network_config} has no id {bundle.out_channels_id!r} (united_ssl.out_channels_id).")
        parser[bundle.out_channels_id] = int(out_channels)
    if bundle.out_activation_id and bundle.out_activation_id in parser:
        parser[bundle.out_activation_id] = None
    network = parser.get_parsed_content(bundle.network_id, instantiate=True, lazy=False)
    if not isinstance(network, nn.Module):
        raise TypeError(f"{bundle.network_config}: {bundle.network_id!r} is a {type(network).__name__}, not a torch module.")
    logger.info(f"backbone of {bundle.name}: {type(network).__name__} with settings {applied}")
    return network


def _component(network: nn.Module, bundle: SSLBundle, name: str) -> nn.Module:
    if name not in bundle.components:
        raise KeyError(f"{bundle.name}'s metadata lists no {name!r} component (components: {sorted(bundle.components)}).")
    try:
        return network.get_submodule(bundle.components[name])
    except AttributeError as e:
        raise AttributeError(
            f"{bundle.name}: component {name!r} is said to be at {bundle.components[name]!r}, which "
            f"{type(network).__name__} does not have."
        ) from e


def build_segmentation_network(
    bundle_dir: SSLBundle | str | os.PathLike,
    out_channels: int,
    settings: Mapping[str, Any] | None = None,
    in_channels: int | None = None,
    spatial_size: Sequence[int] | None = None,
) -> nn.Module:
    """The pretrained bundle's image-to-image network with ``out_channels`` outputs and ``in_channels`` inputs.

    Args:
        bundle_dir: the pretrained bundle (or its folder).
        out_channels: classes of the segmentation, background included.
        settings: the pretraining run's settings (see :func:`build_backbone`).
        in_channels: the task's input channels; when they differ from the backbone's, its input convolutions are
            adapted (:func:`~common.transfer.input_channels.adapt_input_channels`).
        spatial_size: a spatial size the network accepts, needed only to adapt input channels.

    Shapes:
        ``(B, in_channels, *S) -> (B, out_channels, *S)`` logits.
    """
    network = build_backbone(bundle_dir, settings, out_channels)
    if in_channels is not None and in_channels != first_convolution(network)[1].in_channels:
        if spatial_size is None:
            raise ValueError("adapting the input channels needs `spatial_size` (a size the network accepts).")
        adapt_input_channels(network, in_channels, spatial_size)
    return network


def build_classification_network(
    bundle_dir: SSLBundle | str | os.PathLike,
    num_classes: int,
    spatial_size: Sequence[int],
    settings: Mapping[str, Any] | None = None,
    in_channels: int | None = None,
    head_conv_channels: int | None = None,
    head_hidden: int | None = None,
    dropout: float = 0.0,
    freeze_encoder: bool = False,
    dense_output: bool = False,
) -> EncoderClassifier:
    """The pretrained bundle's ``encoder`` component plus a new :class:`~common.networks.ClassificationHead`.

    The head's input channels are those of the encoder's deepest feature map on an input of ``spatial_size``.

    Args:
        bundle_dir: the pretrained bundle (or its folder).
        num_classes: classes of the task.
        spatial_size: the patch size the classifier sees.
        settings: the pretraining run's settings (see :func:`build_backbone`).
        in_channels: the task's input channels (adapted as in :func:`build_segmentation_network`).
        head_conv_channels: channels of the head's conv unit, ``None`` for none.
        head_hidden: the head's hidden width, ``None`` for a linear head (GAP + linear: a linear probe when frozen).
        dropout: dropout before the head's last layer.
        freeze_encoder: linear probing (see :class:`EncoderClassifier`).
        dense_output: broadcast the logits over the input (sliding-window inference of a whole volume).

    Shapes:
        ``(B, in_channels, *spatial_size) -> (B, num_classes)``.
    """
    bundle = as_bundle(bundle_dir)
    encoder = _component(build_backbone(bundle, settings), bundle, "encoder")
    if in_channels is not None and in_channels != first_convolution(encoder)[1].in_channels:
        adapt_input_channels(encoder, in_channels, spatial_size)
    channels = first_convolution(encoder)[1].in_channels
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        deepest = deepest_feature(encoder(torch.zeros(1, channels, *spatial_size)))
    encoder.train(was_training)
    head = ClassificationHead(
        spatial_dims=len(spatial_size),
        in_channels=int(deepest.shape[1]),
        num_classes=num_classes,
        conv_channels=head_conv_channels,
        hidden_features=head_hidden,
        dropout=dropout,
    )
    return EncoderClassifier(encoder, head, freeze_encoder=freeze_encoder, dense_output=dense_output)
