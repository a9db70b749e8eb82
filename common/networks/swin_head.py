"""The discriminative heads of Swin UNETR pretraining: rotation logits and a contrastive projection."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["POOLINGS", "SwinPretextHead"]

#: How a feature vector is taken from the last hidden state: one token per head (the original code) or the mean.
POOLINGS = ("token", "mean")


class SwinPretextHead(nn.Module):
    """Two linear heads on the last hidden state of ``swinViT`` (Tang et al., CVPR 2022).

    The original pretraining code (research-contributions ``SwinUNETR/Pretrain/models/ssl_head.py``) flattens the
    last hidden state into tokens and reads the rotation logits from token 0 and the contrastive projection from
    token 1, each through one linear layer (768 -> 4 and 768 -> 512 at feature size 48). In the last stage every
    window covers the whole map (3^3 tokens at 96^3 with window 7), so every token sees the whole crop.
    ``pooling="mean"`` averages all tokens instead.

    Args:
        in_channels: channels of the last hidden state (``16 * feature_size``).
        num_rotations: rotation classes (4 quarter-turns).
        projection_dim: width of the contrastive projection (512 in the original).
        pooling: ``"token"`` (token 0 for rotation, token 1 for the projection, as the original) or ``"mean"``.

    Shapes:
        input ``(B, in_channels, *S)`` with ``prod(S) >= 2`` for token pooling; output
        ``{"rotation": (B, num_rotations), "projection": (B, projection_dim)}``.
    """

    def __init__(
        self, in_channels: int = 768, num_rotations: int = 4, projection_dim: int = 512, pooling: str = "token"
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_rotations < 2 or projection_dim < 1:
            raise ValueError(
                f"need in_channels >= 1, num_rotations >= 2 and projection_dim >= 1, got {in_channels}, "
                f"{num_rotations}, {projection_dim}."
            )
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")
        self.pooling = pooling
        self.rotation = nn.Linear(in_channels, num_rotations)
        self.projection = nn.Linear(in_channels, projection_dim)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens = features.flatten(2)  # (B, C, N)
        if self.pooling == "mean":
            pooled = tokens.mean(dim=2)
            return {"rotation": self.rotation(pooled), "projection": self.projection(pooled)}
        if tokens.shape[2] < 2:
            raise ValueError(
                f"token pooling reads tokens 0 and 1 of the last hidden state, which has {tokens.shape[2]} token(s) "
                f"(shape {tuple(features.shape)}): use a larger roi_size or head pooling 'mean'."
            )
        return {"rotation": self.rotation(tokens[:, :, 0]), "projection": self.projection(tokens[:, :, 1])}
