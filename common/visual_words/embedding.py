"""Whole-volume embeddings for finding a reference volume's nearest neighbours (TransVW self-discovery, step 1).

The official self-discovery (Haghighi et al., IEEE TMI 2021; ``self_discovery/train_autoencoder.py`` and
``feature_extractor.py``) trains an auto-encoder on whole volumes resized to 128x128x64 (MSE, Adam 1e-3) and
describes each volume by the global average of its bottleneck features; patients whose descriptions are close are
taken as instances of the same visual words. Here the auto-encoder is MONAI's
:class:`~monai.networks.nets.AutoEncoder` (strided convolutions, no skip connections, so the bottleneck has to
carry the volume: the official code uses a skip-connected U-Net, whose bottleneck need not) and the description is
the same global average of its bottleneck.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets import AutoEncoder
from monai.transforms import Resize
from monai.utils import convert_to_tensor
from tqdm.auto import tqdm

__all__ = ["build_autoencoder", "embed", "embedding_input", "train_autoencoder"]


def build_autoencoder(
    channels: Sequence[int] = (16, 32, 64, 128), in_channels: int = 1, spatial_dims: int = 3
) -> AutoEncoder:
    """The discovery's auto-encoder: one stride-2 convolution unit per entry of ``channels``, mirrored back.

    Args:
        channels: output channels of the encoder units; the input must be divisible by ``2 ** len(channels)``.
        in_channels: image channels.
        spatial_dims: 2 or 3.

    Returns:
        An untrained :class:`~monai.networks.nets.AutoEncoder` (``encode`` + ``intermediate`` is the encoder), with
        MONAI's default instance normalisation (the same in training and evaluation, whatever the batch size).
    """
    if not channels:
        raise ValueError("the auto-encoder needs at least one level of channels.")
    return AutoEncoder(
        spatial_dims=spatial_dims, in_channels=in_channels, out_channels=in_channels,
        channels=tuple(int(c) for c in channels), strides=(2,) * len(channels),
    )  # fmt: skip


def embedding_input(volume: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """A whole volume resized to the auto-encoder's input ``size`` (area averaging when shrinking).

    Args:
        volume: ``(C, *S)`` after the load transforms.
        size: spatial input size of the auto-encoder.

    Returns:
        ``(C, *size)`` float32 tensor.
    """
    volume = convert_to_tensor(volume, track_meta=False).float()
    resized = Resize(spatial_size=[int(s) for s in size], mode="area")(volume)
    return convert_to_tensor(resized, track_meta=False).float()


def train_autoencoder(
    model: AutoEncoder,
    inputs: torch.Tensor,
    epochs: int,
    learning_rate: float = 1e-3,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Train ``model`` to reproduce ``inputs`` (MSE, Adam), deterministically under ``seed``.

    The global torch random state is left as it was (the auto-encoder draws from its own forked stream), so running
    the discovery inside a training process does not change that process's random numbers.

    Args:
        model: the auto-encoder (trained in place; its initial weights are redrawn from ``seed``).
        inputs: ``(N, C, *S)`` whole-volume inputs.
        epochs: passes over the volumes.
        learning_rate: Adam learning rate (official: 1e-3).
        batch_size: volumes per step.
        seed: seed of the weight initialisation and of the batch order.
        progress: show a progress bar.

    Returns:
        The mean training loss of every epoch.
    """
    if int(epochs) < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs!r}.")
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for module in model.modules():
            if module is not model and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        generator = torch.Generator().manual_seed(int(seed))
        optimizer = torch.optim.Adam(model.parameters(), lr=float(learning_rate))
        model.train()
        bar = tqdm(range(int(epochs)), desc="auto-encoder", unit="epoch", disable=not progress, leave=False)
        for _ in bar:
            order = torch.randperm(inputs.shape[0], generator=generator)
            total = 0.0
            for start in range(0, len(order), int(batch_size)):
                batch = inputs[order[start : start + int(batch_size)]]
                loss = F.mse_loss(model(batch), batch)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * batch.shape[0]
            losses.append(total / inputs.shape[0])
            bar.set_postfix(mse=f"{losses[-1]:.4f}")
    model.eval()
    return losses


@torch.no_grad()
def embed(model: AutoEncoder, inputs: torch.Tensor, batch_size: int = 8) -> np.ndarray:
    """Describe each volume by the global average of the auto-encoder's bottleneck (official: GAP of ``depth_7``).

    Args:
        model: a trained auto-encoder (put in eval mode here).
        inputs: ``(N, C, *S)`` whole-volume inputs.
        batch_size: volumes per forward pass.

    Returns:
        ``(N, F)`` float64 array, ``F`` the bottleneck channels.
    """
    model.eval()
    features = []
    for start in range(0, inputs.shape[0], int(batch_size)):
        bottleneck = model.intermediate(model.encode(inputs[start : start + int(batch_size)]))
        features.append(bottleneck.flatten(2).mean(dim=2))
    return torch.cat(features).double().cpu().numpy()
