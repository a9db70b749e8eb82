"""The Siamese-Octad model of Rubik's Cube: one shared encoder(-decoder) on each of 8 sub-cubes, one joint head.

Zhuang et al. (MICCAI 2019) and the United Rubik's Cube code (Guo et al., MedIA 2024): every sub-cube goes through
the same encoder (weight sharing); the 8 bottlenecks are concatenated and a head predicts the permutation of the
sub-cubes and, per sub-cube, whether it was turned; from stage 2 the same decoder restores every sub-cube.
"""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Pool
from torch import nn

from common.networks.united_model import UnitedModel

__all__ = ["OctadHead", "SiameseOctadModel"]


class OctadHead(nn.Module):
    """Joint head on the concatenated bottlenecks of the branches: permutation logits and per-branch flag logits.

    Each branch's bottleneck is average-pooled, the ``num_cubes`` vectors are concatenated in branch order (the
    United code concatenates the bottlenecks on channels and pools, which is the same), an optional hidden layer
    follows, then one linear layer per output. Outputs are logits (softmax/sigmoid belong to the losses).

    Args:
        in_channels: channels of one branch's bottleneck.
        num_permutations: number of permutation classes.
        num_cubes: branches (8 for the 2x2x2 grid).
        hidden_features: width of a shared hidden layer (ReLU), ``None`` for none (United code: none).
        rotation_flags: predict a "was turned" flag per branch.
        mask_flags: predict a "was masked" flag per branch (Rubik's Cube+).
        spatial_dims: 2 or 3.
        dropout: dropout probability before the output layers.

    Shapes:
        input ``(B, num_cubes * in_channels, *S)``; output ``{"order": (B, num_permutations),
        "rotation": (B, num_cubes), "mask": (B, num_cubes)}`` (only the enabled flags).
    """

    def __init__(
        self,
        in_channels: int,
        num_permutations: int,
        num_cubes: int = 8,
        hidden_features: int | None = None,
        rotation_flags: bool = True,
        mask_flags: bool = False,
        spatial_dims: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_cubes < 2 or num_permutations < 2:
            raise ValueError(
                f"need in_channels >= 1, num_cubes >= 2 and num_permutations >= 2, got {in_channels}, {num_cubes}, "
                f"{num_permutations}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        self.in_channels, self.num_cubes = in_channels, num_cubes
        self.pool = Pool[Pool.ADAPTIVEAVG, spatial_dims](1)
        features = num_cubes * in_channels
        trunk: list[nn.Module] = []
        if hidden_features:
            trunk += [nn.Linear(features, hidden_features), nn.ReLU(inplace=True)]
            features = hidden_features
        if dropout:
            trunk.append(nn.Dropout(dropout))
        self.trunk = nn.Sequential(*trunk)
        self.order = nn.Linear(features, num_permutations)
        self.rotation = nn.Linear(features, num_cubes) if rotation_flags else None
        self.mask = nn.Linear(features, num_cubes) if mask_flags else None

    def forward(self, bottlenecks: torch.Tensor) -> dict[str, torch.Tensor]:
        if bottlenecks.shape[1] != self.num_cubes * self.in_channels:
            raise ValueError(
                f"OctadHead expects {self.num_cubes} x {self.in_channels} channels, got {tuple(bottlenecks.shape)}."
            )
        x = self.trunk(self.pool(bottlenecks).flatten(1))
        out = {"order": self.order(x)}
        if self.rotation is not None:
            out["rotation"] = self.rotation(x)
        if self.mask is not None:
            out["mask"] = self.mask(x)
        return out


class SiameseOctadModel(UnitedModel):
    """A :class:`UnitedModel` whose encoder and decoder run on every sub-cube of an octad with shared weights.

    The components keep their names and plain shapes: ``encoder`` is a single-branch
    :class:`~common.networks.GenesisEncoder` (``encoder.pt`` loads strictly into one), ``decoder`` a
    :class:`~common.networks.GenesisDecoder`, ``head`` an :class:`OctadHead`; :meth:`restorer` is the single-branch
    encoder-decoder (``model.pt``), which restores any cube. The branches are folded into the batch, so one encoder
    call covers all ``B * num_cubes`` sub-cubes (BatchNorm statistics are taken over all of them).

    Args:
        encoder: the shared encoder (``in_channels`` = the image's channels ``C``).
        head: the joint head, or ``None``.
        decoder: the shared decoder, or ``None``.
        num_cubes: sub-cubes per octad.

    Shapes:
        ``forward(image (B, num_cubes * C, *S))`` returns ``features`` (the encoder's list for the ``B * num_cubes``
        sub-cubes), ``head`` (the head's dict) and ``reconstruction`` ``(B, num_cubes * C, *S)`` (branch ``i``'s
        restoration in channels ``i C .. (i + 1) C``).
    """

    def __init__(
        self, encoder: nn.Module, head: nn.Module | None = None, decoder: nn.Module | None = None, num_cubes: int = 8
    ) -> None:
        super().__init__(encoder, head, decoder)
        if num_cubes < 2:
            raise ValueError(f"num_cubes must be at least 2, got {num_cubes}.")
        self.num_cubes = num_cubes

    def fold(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, num_cubes * C, *S)`` -> ``(B * num_cubes, C, *S)``: one row per sub-cube, octad by octad."""
        channels = getattr(self.encoder, "in_channels", None) or image.shape[1] // self.num_cubes
        if image.shape[1] != self.num_cubes * channels:
            raise ValueError(
                f"SiameseOctadModel expects {self.num_cubes} sub-cubes x {channels} channels on dim 1, "
                f"got {tuple(image.shape)}."
            )
        return image.reshape(image.shape[0] * self.num_cubes, channels, *image.shape[2:])

    def unfold(self, x: torch.Tensor) -> torch.Tensor:
        """``(B * num_cubes, C, *S)`` -> ``(B, num_cubes * C, *S)``, the inverse of :meth:`fold`."""
        return x.reshape(x.shape[0] // self.num_cubes, self.num_cubes * x.shape[1], *x.shape[2:])

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor] | dict[str, torch.Tensor]]:
        features = self.encoder(self.fold(image))
        out: dict = {"features": features}
        if self.head is not None:
            out["head"] = self.head(self.unfold(features[-1]))
        if self.decoder is not None:
            out["reconstruction"] = self.unfold(self.decoder(features))
        return out
