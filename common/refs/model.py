"""The ReFs model: any method's model plus a segmentation head for the supervised reference task.

The reference head is trainable, so it belongs to the model (the optimizer and DistributedDataParallel see it, the
exporter writes ``reference_head.pt``). :class:`ReferenceModel` wraps the method's model without changing it: every
attribute it does not have itself (``encoder``, ``head``, ``decoder``, a method's ``predictor``, ``fold``...) is the
wrapped model's, so tasks, the stage hand-off and ``freeze`` see the method's components under their usual names,
and ``encoder.pt`` stays a plain encoder state dict.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from torch import nn

from common.engines.distributed import is_distributed

__all__ = ["ReferenceHead", "ReferenceModel", "last_parametrised_layer", "load_reference_head", "training_network"]


def last_parametrised_layer(module: nn.Module) -> str:
    """The dotted name of the last leaf module with parameters inside ``module`` (a decoder's output conv).

    For the Genesis decoder ``out.conv`` (its input: the last decoder level, ``2 * base_channels`` channels); for
    MONAI's SwinUNETR blocks ``out.conv.conv``; for FlexibleUNet's head ``segmentation_head.0``.
    """
    last = None
    for name, child in module.named_modules():
        if name and not any(True for _ in child.children()) and any(True for _ in child.parameters(recurse=False)):
            last = name
    if last is None:
        raise ValueError(f"{type(module).__name__} has no layer with parameters to read features from.")
    return last


@contextmanager
def _capture_input(layer: nn.Module, store: list[torch.Tensor]):
    handle = layer.register_forward_pre_hook(lambda _module, args: store.append(args[0]))
    try:
        yield
    finally:
        handle.remove()


class ReferenceHead(nn.Module):
    """A 1x1(x1) convolution to the reference classes, the logits resized to the image when the features are coarser.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the features it reads.
        num_classes: reference classes including background.

    Shapes:
        ``features (B, in_channels, *s)``, ``size`` (the image's ``*S``) -> ``(B, num_classes, *S)``.
    """

    def __init__(self, spatial_dims: int, in_channels: int, num_classes: int) -> None:
        super().__init__()
        if num_classes < 2 or in_channels < 1:
            raise ValueError(f"need num_classes >= 2 and in_channels >= 1, got {num_classes}, {in_channels}.")
        self.spatial_dims = spatial_dims
        self.conv = Convolution(spatial_dims, in_channels, num_classes, kernel_size=1, conv_only=True)

    def forward(self, features: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        logits = self.conv(features)
        if tuple(logits.shape[2:]) != tuple(size):
            logits = F.interpolate(logits, size=tuple(size), mode="trilinear" if self.spatial_dims == 3 else "bilinear", align_corners=False)
        return logits


class ReferenceModel(nn.Module):
    """A method's model with the ReFs reference head (Xie et al., MedIA 2024).

    ``forward(image)`` is the method's forward; ``forward(image, reference=True)`` is the reference task's: the
    reference head reads the decoder's last features (the input of the decoder's output layer, captured on the
    model's single-branch ``restorer()``) or, in a stage without a decoder (stage 1), the encoder's deepest features,
    and returns segmentation logits at the image size. Call both through the (possibly DDP-wrapped) network so that
    DistributedDataParallel synchronises every gradient.

    The head is built here, so its input width is found by running the feature path once on a zero image of
    ``probe_size`` (eval mode, no gradients) unless ``feature_channels`` is given. Because the feature source differs
    with and without a decoder, the reference head is not handed from stage to stage.

    Args:
        model: the method's model (a :class:`~common.networks.UnitedModel` or subclass).
        num_classes: reference classes including background.
        probe_size: spatial size of the probe image (the bundle's ``roi_size``).
        in_channels: image channels.
        feature_layer: dotted name of the layer (inside ``model``) whose *input* the head reads; default: the
            decoder's last layer with parameters (:func:`last_parametrised_layer`), or the encoder's deepest map.
        feature_channels: channels of those features (skips the probe).

    Attributes:
        reference_head: the :class:`ReferenceHead`.
        uses_decoder: whether the head reads decoder features.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        probe_size: Sequence[int],
        in_channels: int = 1,
        feature_layer: str | None = None,
        feature_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        decoder = getattr(model, "decoder", None)
        self.uses_decoder = decoder is not None
        if feature_layer is None and self.uses_decoder:
            feature_layer = "decoder." + last_parametrised_layer(decoder)
        self.feature_layer = feature_layer
        if feature_layer is not None:
            try:
                model.get_submodule(feature_layer)
            except AttributeError as error:
                raise ValueError(f"refs feature_layer {feature_layer!r} is not a layer of {type(model).__name__}.") from error
        self._restorer: Any = None  # built on first use, kept unregistered (it shares the model's modules)
        spatial_dims = len(probe_size)
        if feature_channels is None:
            feature_channels = self._probe(torch.zeros(1, in_channels, *probe_size))
        self.reference_head = ReferenceHead(spatial_dims, int(feature_channels), num_classes)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "model":
                raise
            return getattr(super().__getattr__("model"), name)

    def components(self) -> dict[str, nn.Module]:
        """The method's components plus ``reference_head``."""
        base = self.model.components() if hasattr(self.model, "components") else dict(self.model.named_children())
        return {**base, "reference_head": self.reference_head}

    def restorer(self) -> nn.Module | None:
        """The method's image-to-image module (``model.pt``): the reference head is not part of it."""
        return self.model.restorer() if hasattr(self.model, "restorer") else None

    def shared_parameters(self) -> list[nn.Parameter]:
        """The parameters both tasks train and whose gradients are matched: the encoder's trainable ones."""
        return [p for p in self.model.encoder.parameters() if p.requires_grad]

    def _features(self, image: torch.Tensor) -> torch.Tensor:
        if self.feature_layer is None:
            return self.model.encoder(image)[-1]
        if self._restorer is None:
            restorer = self.model.restorer() if hasattr(self.model, "restorer") else None
            if restorer is None:
                raise ValueError("the reference head reads decoder features, but the model has no restorer().")
            object.__setattr__(self, "_restorer", restorer)
        store: list[torch.Tensor] = []
        with _capture_input(self.model.get_submodule(self.feature_layer), store):
            self._restorer(image)
        if not store:
            raise RuntimeError(f"refs feature_layer {self.feature_layer!r} did not run in the model's restorer.")
        return store[-1]

    @torch.no_grad()
    def _probe(self, image: torch.Tensor) -> int:
        was_training = self.model.training
        self.model.eval()
        try:
            return int(self._features(image).shape[1])
        finally:
            self.model.train(was_training)

    def reference_forward(self, image: torch.Tensor) -> torch.Tensor:
        """Segmentation logits ``(B, num_classes, *S)`` of the reference task for ``image`` ``(B, C, *S)``."""
        return self.reference_head(self._features(image), image.shape[2:])

    def forward(self, image: torch.Tensor, *args: Any, reference: bool = False, **kwargs: Any) -> Any:
        if reference:
            return self.reference_forward(image)
        return self.model(image, *args, **kwargs)


def training_network(
    model: nn.Module, device: torch.device | str, find_unused_parameters: bool = False
) -> nn.Module:
    """``model`` on ``device``, wrapped in DistributedDataParallel when a process group of several ranks exists.

    ``refs.yaml`` builds the trained network with it, so the overlay works with and without ``multi_gpu_train.yaml``
    (which must then come *before* ``refs.yaml``: it would otherwise wrap the model without the reference head).
    """
    model = model.to(device)
    if not is_distributed():
        return model
    device = torch.device(device)
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=find_unused_parameters
    )


def load_reference_head(
    model: ReferenceModel, previous_stage_dir: str | None, handoff: bool, stage_dir: str | None = None
) -> ReferenceModel:
    """Hand the reference head over from the previous stage (``<previous_stage_dir>/reference_head.pt``), strictly.

    Only meaningful between stages whose head reads the same features: stage 2 to stage 3 (both read the decoder;
    stage 1 reads the encoder's deepest map, so ``refs.yaml`` hands it off only into stage 3). Skipped when this
    stage resumes from its own checkpoint (the checkpoint holds the head).

    Args:
        model: this stage's :class:`ReferenceModel`.
        previous_stage_dir: the previous stage's folder.
        handoff: whether to load (``refs_handoff_head``).
        stage_dir: this stage's folder, to detect a resumable checkpoint.

    Returns:
        ``model``, for use in a config expression.

    Raises:
        ValueError: ``handoff`` without ``previous_stage_dir``; the file's errors of
            :func:`common.handlers.stage_handoff.load_component` (missing file, other keys or shapes, NaN weights).
    """
    from common.handlers.stage_checkpoint import latest_checkpoint
    from common.handlers.stage_handoff import load_component

    if not handoff or (stage_dir is not None and latest_checkpoint(stage_dir) is not None):
        return model
    if previous_stage_dir is None:
        raise ValueError("refs: handing off the reference head needs previous_stage_dir; got None.")
    path = os.path.join(previous_stage_dir, "reference_head.pt")
    tensors = load_component(model.reference_head, path, "reference_head")
    logging.getLogger(__name__).info(f"stage hand-off: loaded reference_head ({tensors} tensors) from {path}")
    return model
