"""PCRL's generator in the United framework: a decoder conditioned on the augmentation code, with a hybrid path.

Zhou et al., "Preservational learning improves self-supervised medical image models by reconstructing diverse
contexts", ICCV 2021 (the improved version in the authors' repository: channel-wise conditioning). The decoder is
told which spatial transform its output must show: the bottleneck is scaled channel-wise by
``sigmoid(MLP(code))`` before decoding (:class:`AugmentationEmbedding`). Besides the "normal" reconstruction of its
own input, the student decodes a *hybrid*: every encoder level mixed as ``alpha * own + (1 - alpha) * other`` with the
teacher's features of the other view (each bottleneck scaled by its own code), whose target is the same mixture of
the two transformed clean crops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from common.networks.restorer import Restorer
from common.networks.united_model import UnitedModel
from common.transforms.spatial_code import CODE_SIZE, identity_code

__all__ = ["AugmentationEmbedding", "PCRLModel", "PCRLRestorer", "condition_features"]


class AugmentationEmbedding(nn.Module):
    """``sigmoid(Linear(ReLU(Linear(code))))``: one scale per bottleneck channel (PCRL: 7 -> 256 -> 512).

    Args:
        channels: bottleneck channels.
        code_size: length of the augmentation code (7).
        hidden_features: hidden width (256).

    Shapes:
        ``(B, code_size) -> (B, channels)`` in (0, 1).
    """

    def __init__(self, channels: int, code_size: int = CODE_SIZE, hidden_features: int = 256) -> None:
        super().__init__()
        if min(channels, code_size, hidden_features) < 1:
            raise ValueError(f"sizes must be positive, got {channels}, {code_size}, {hidden_features}.")
        self.code_size = code_size
        self.layers = nn.Sequential(
            nn.Linear(code_size, hidden_features), nn.ReLU(inplace=True), nn.Linear(hidden_features, channels), nn.Sigmoid()
        )

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        if code.ndim != 2 or code.shape[1] != self.code_size:
            raise ValueError(f"augmentation codes must be (B, {self.code_size}), got {list(code.shape)}.")
        return self.layers(code)


def condition_features(features: Sequence[torch.Tensor], scale: torch.Tensor) -> list[torch.Tensor]:
    """The encoder's feature list with the bottleneck ``(B, C, *S)`` multiplied channel-wise by ``scale`` ``(B, C)``."""
    bottleneck = features[-1]
    return [*features[:-1], bottleneck * scale.to(bottleneck.dtype)[(...,) + (None,) * (bottleneck.ndim - 2)]]


class PCRLModel(UnitedModel):
    """Encoder, projection head and (from stage 2 on) a decoder conditioned on PCRL's augmentation code.

    ``aug_embedding`` exists only with a decoder (stage 1 has nothing to condition) and is a component of its own
    (``aug_embedding.pt``). ``restorer()`` decodes with the identity code: the input restored as it is
    (:class:`PCRLRestorer`, ``model.pt``).

    Args:
        encoder: returns a list of feature maps, the last one being the bottleneck.
        head: the projection head, e.g. :class:`~common.networks.ProjectionHead` (PCRL: 512 -> 128 -> 128).
        decoder: the restorative decoder, or ``None``.
        code_size: length of the augmentation code (7).
        embedding_hidden: hidden width of :class:`AugmentationEmbedding` (256).

    Shapes:
        ``forward(image (B, C, *S), code=None, mix_features=None, mix_code=None, alpha=None)`` returns
        ``features``, ``head`` ``(B, D)`` and, with a decoder, ``reconstruction`` (``image``'s features decoded with
        ``code``, default the identity) and, when ``mix_features`` (the other view's feature list, e.g. from the
        teacher) is given, ``hybrid``: ``alpha * own + (1 - alpha) * other`` at every level, each bottleneck scaled
        by its own code (``mix_code``, default the identity), decoded.
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        decoder: nn.Module | None = None,
        code_size: int = CODE_SIZE,
        embedding_hidden: int = 256,
    ) -> None:
        super().__init__(encoder, head, decoder)
        if head is None:
            raise ValueError("PCRLModel needs a head (the projection head).")
        self.code_size = code_size
        channels = encoder.out_channels[-1]
        self.aug_embedding = AugmentationEmbedding(channels, code_size, embedding_hidden) if decoder is not None else None

    def components(self) -> dict[str, nn.Module]:
        extra = {"aug_embedding": self.aug_embedding} if self.aug_embedding is not None else {}
        return {**super().components(), **extra}

    def _code(self, code: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        return identity_code(like.shape[0], like.device, like.dtype) if code is None else code.to(like.dtype)

    def condition(self, features: Sequence[torch.Tensor], code: torch.Tensor | None) -> list[torch.Tensor]:
        """``features`` with the bottleneck scaled by ``aug_embedding(code)`` (identity code when ``None``)."""
        return condition_features(features, self.aug_embedding(self._code(code, features[-1])))

    def forward(
        self,
        image: torch.Tensor,
        code: torch.Tensor | None = None,
        mix_features: Sequence[torch.Tensor] | None = None,
        mix_code: torch.Tensor | None = None,
        alpha: float | None = None,
    ) -> dict[str, Any]:
        features = self.encoder(image)
        out: dict[str, Any] = {"features": features, "head": self.head(features[-1])}
        if self.decoder is None:
            return out
        own = self.condition(features, code)
        out["reconstruction"] = self.decoder(own)
        if mix_features is not None:
            if alpha is None or len(mix_features) != len(features):
                raise ValueError("the hybrid path needs alpha and a feature list of the encoder's length.")
            other = self.condition(mix_features, mix_code)
            out["hybrid"] = self.decoder([alpha * a + (1.0 - alpha) * b for a, b in zip(own, other)])
        return out

    def restorer(self) -> nn.Module | None:
        if self.decoder is None:
            return None
        return PCRLRestorer(self.encoder, self.decoder, self.aug_embedding)


class PCRLRestorer(Restorer):
    """``image -> reconstruction`` of a :class:`PCRLModel` with the identity code (exported as ``model.pt``).

    Its state dict keys are ``encoder.*``, ``decoder.*`` and ``aug_embedding.*`` (those of the PCRL model without the
    head), so ``inference.yaml`` builds it with the three modules and loads ``model.pt`` strictly.

    Args:
        encoder: e.g. :class:`~common.networks.GenesisEncoder`.
        decoder: e.g. :class:`~common.networks.GenesisDecoder`.
        aug_embedding: :class:`AugmentationEmbedding` of the bottleneck's channels.

    Shapes:
        ``(B, C, *S) -> (B, C_out, *S)``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, aug_embedding: nn.Module) -> None:
        super().__init__(encoder, decoder)
        self.aug_embedding = aug_embedding

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.encoder(image)
        code = identity_code(image.shape[0], image.device, features[-1].dtype)
        return self.decoder(condition_features(features, self.aug_embedding(code)))
