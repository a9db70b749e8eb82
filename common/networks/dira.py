"""DiRA's 2D network from MONAI parts: ResNet encoder, U-Net decoder, projection heads and the PatchGAN critic.

DiRA (Haghighi et al., "DiRA: Discriminative, Restorative, and Adversarial Learning for Self-supervised Medical
Image Analysis", CVPR 2022) trains a 2D U-Net with a ResNet-50 encoder (segmentation_models_pytorch's ``Unet``,
random initialisation) whose last encoder feature (2048 channels) feeds the discriminative head, whose decoder
restores the undistorted view (1 channel, sigmoid), and an unconditional PatchGAN discriminator judging
restorations against originals. Here every part is a MONAI one:

* the encoder is MONAI's ResNet with the feature-list forward of :class:`monai.networks.nets.resnet.ResNetEncoder`
  (the encoder of :class:`monai.networks.nets.FlexibleUNet`); at ``width=1`` its state dict is that encoder's,
  so ``encoder.pt`` loads strictly into ``ResNetEncoder(backbone, pretrained=False, spatial_dims=2)`` and into a
  ``FlexibleUNet``'s ``encoder``. ``width < 1`` narrows every stage (MONAI ``widen_factor``) for CPU demos.
  ImageNet/MedicalNet weights are never downloaded (random initialisation, as DiRA's runs);
* the decoder is FlexibleUNet's :class:`~monai.networks.nets.flexible_unet.UNetDecoder` plus its
  :class:`~monai.networks.nets.flexible_unet.SegmentationHead` and an output activation; its state dict keys
  (``decoder.*``, ``segmentation_head.*``) are FlexibleUNet's, so ``encoder.pt`` (prefixed ``encoder.``) and
  ``decoder.pt`` together load strictly into a ``FlexibleUNet`` (:func:`flexible_unet_state_dict`);
* the critic is MONAI's :class:`~monai.networks.nets.PatchDiscriminator` in DiRA's configuration (3x3 kernels,
  64-128-256-512 channels, instance norm, LeakyReLU 0.2, N(0, 0.02) initialisation; a 224x224 input scores on a
  28x28 grid), wrapped to the critic interface of the trainer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.networks.layers.factories import Act, Pool
from monai.networks.nets import PatchDiscriminator
from monai.networks.nets.flexible_unet import SegmentationHead, UNetDecoder
from monai.networks.nets.resnet import ResNet, ResNetBottleneck, get_inplanes, resnet_params
from torch import nn

from common.networks.encoder import check_divisible
from common.networks.united_model import UnitedModel

__all__ = [
    "DiRAModel",
    "DiRAUNet",
    "PatchGANCritic",
    "ProjectionMLP",
    "ResNetFeatureEncoder",
    "UNetRestorationDecoder",
    "dira_head",
    "dira_predictor",
    "dira_unet",
    "flexible_unet_state_dict",
    "resnet_feature_channels",
]

#: The ResNet depths MONAI builds (``monai.networks.nets.resnet.resnet_params``).
BACKBONES = ("resnet10", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet200")


def _check_backbone(backbone: str) -> None:
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}.")


def resnet_feature_channels(backbone: str = "resnet50", width: float = 1.0) -> list[int]:
    """Channels of the five feature maps of :class:`ResNetFeatureEncoder` (stem, then the four stages).

    ``resnet50`` at ``width=1``: ``[64, 256, 512, 1024, 2048]`` (the 2048-channel last map is DiRA's latent).
    """
    _check_backbone(backbone)
    block = resnet_params[backbone][0]
    expansion = ResNetBottleneck.expansion if block in ("bottleneck", ResNetBottleneck) else 1
    planes = [int(c * width) for c in get_inplanes()]
    return [planes[0]] + [p * expansion for p in planes]


class ResNetFeatureEncoder(ResNet):
    """MONAI's ResNet returning its five feature maps: the encoder of FlexibleUNet, with an optional width factor.

    Same layers and forward as :class:`monai.networks.nets.resnet.ResNetEncoder` (stem conv 7x7 stride 2, BN,
    ReLU -> feature 1; max-pool; stages 1-4 -> features 2-5), built without pretrained weights. Why not
    ``ResNetEncoder`` itself: its width is fixed and it defaults to downloading MedicalNet weights, which must never
    happen at run time here (and do not exist in 2D).

    Args:
        backbone: ``resnet10`` ... ``resnet200`` (DiRA: ``resnet50``).
        spatial_dims: 2 (DiRA) or 3.
        in_channels: image channels.
        width: multiplies every stage's width (MONAI ``widen_factor``); 1 reproduces ``ResNetEncoder`` exactly.

    Shapes:
        input ``(B, in_channels, *S)``; output: five maps at ``S/2, S/4, S/8, S/16, S/32`` with
        :attr:`out_channels` channels (the U-Net decoder needs ``S`` divisible by 32).
    """

    def __init__(self, backbone: str = "resnet50", spatial_dims: int = 2, in_channels: int = 1, width: float = 1.0) -> None:
        _check_backbone(backbone)
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if not 0 < width <= 4 or int(64 * width) < 1:
            raise ValueError(f"width must lie in (0, 4] and leave at least one channel, got {width}.")
        block, layers, shortcut_type, bias_downsample, _ = resnet_params[backbone]
        super().__init__(
            block=block,
            layers=layers,
            block_inplanes=get_inplanes(),
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            conv1_t_stride=2,
            shortcut_type=shortcut_type,
            feed_forward=False,
            bias_downsample=bias_downsample,
            widen_factor=width,
        )
        self.backbone = backbone
        self.out_channels = resnet_feature_channels(backbone, width)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.act(self.bn1(self.conv1(x)))
        features = [x]
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer1(x)  # unrolled: TorchScript cannot loop over a tuple of modules
        features.append(x)
        x = self.layer2(x)
        features.append(x)
        x = self.layer3(x)
        features.append(x)
        x = self.layer4(x)
        features.append(x)
        return features


class UNetRestorationDecoder(nn.Module):
    """FlexibleUNet's decoder and segmentation head, plus an output activation: the restorative decoder.

    ``decoder`` (:class:`~monai.networks.nets.flexible_unet.UNetDecoder`) upsamples the deepest map through one
    ``UpCat`` block per level with the encoder's skips (the stem feature last), ``segmentation_head`` maps to
    ``out_channels`` with a 3x3 convolution and upsamples by 2 to the input size, ``out_activation`` (sigmoid for
    targets in [0, 1], as DiRA) follows. Its state dict keys are those of a ``FlexibleUNet`` minus ``encoder.*``.

    Args:
        encoder_channels: channels of the encoder's five feature maps (:attr:`ResNetFeatureEncoder.out_channels`).
        spatial_dims: 2 or 3.
        in_channels: image channels (FlexibleUNet counts the input among the encoder channels).
        out_channels: channels of the restoration.
        decoder_channels: channels of the five decoder levels, deepest first (FlexibleUNet: 256, 128, 64, 32, 16).
        out_activation: ``"sigmoid"`` or ``None`` (unbounded targets, or logits for a segmentation transfer).
        upsample: FlexibleUNet's ``upsample`` (``nontrainable`` nearest-neighbour, ``deconv``, ``pixelshuffle``).

    Shapes:
        input: the encoder's feature list of an image ``(B, C, *S)``, every ``S_d`` divisible by 32 (five levels);
        output ``(B, out_channels, *S)``.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        out_activation: str | None = "sigmoid",
        upsample: str = "nontrainable",
    ) -> None:
        super().__init__()
        encoder_channels, decoder_channels = [int(c) for c in encoder_channels], [int(c) for c in decoder_channels]
        if len(decoder_channels) != len(encoder_channels):
            raise ValueError(
                f"decoder_channels {decoder_channels} need one entry per encoder feature map ({len(encoder_channels)})."
            )
        if min(decoder_channels + [out_channels, in_channels]) < 1:
            raise ValueError(f"channels must be positive, got decoder {decoder_channels}, out {out_channels}.")
        self.num_features = len(encoder_channels)
        self.decoder = UNetDecoder(
            spatial_dims=spatial_dims,
            encoder_channels=[in_channels, *encoder_channels],
            decoder_channels=decoder_channels,
            act=("relu", {"inplace": True}),
            norm=("batch", {"eps": 1e-3, "momentum": 0.1}),
            dropout=0.0,
            bias=False,
            upsample=upsample,
            pre_conv="default",
            interp_mode="nearest",
            align_corners=None,
            is_pad=True,
        )
        self.segmentation_head = SegmentationHead(spatial_dims, decoder_channels[-1], out_channels, kernel_size=3)
        self.out_activation = Act[out_activation]() if out_activation else nn.Identity()

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if len(features) != self.num_features:
            raise ValueError(f"UNetRestorationDecoder expects {self.num_features} feature maps, got {len(features)}.")
        # the stem map is at half the input size; the skips line up only for inputs divisible by 2 ** levels
        check_divisible([2 * int(s) for s in features[0].shape[2:]], 2**self.num_features, "DiRA U-Net input")
        return self.out_activation(self.segmentation_head(self.decoder(features, self.num_features - 1)))


class DiRAUNet(nn.Module):
    """The image-to-image network: ``FlexibleUNet`` (ResNet encoder, U-Net decoder, segmentation head) + activation.

    It holds the encoder and the parts of a :class:`UNetRestorationDecoder` under FlexibleUNet's names
    (``encoder``, ``decoder``, ``segmentation_head``), so its state dict (``model.pt``) loads strictly into
    ``monai.networks.nets.FlexibleUNet(in_channels, out_channels, backbone, decoder_channels=...)`` at width 1;
    the activation has no weights. :meth:`DiRAModel.restorer` builds it from the model's own modules;
    :func:`dira_unet` builds it from settings (inference, transfer).

    Args:
        encoder: a :class:`ResNetFeatureEncoder`.
        decoder: a :class:`UNetRestorationDecoder` of that encoder.

    Shapes:
        ``(B, in_channels, *S) -> (B, out_channels, *S)``, every ``S_d`` divisible by 32.
    """

    def __init__(self, encoder: nn.Module, decoder: UNetRestorationDecoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder.decoder
        self.segmentation_head = decoder.segmentation_head
        self.out_activation = decoder.out_activation
        self.num_features = decoder.num_features

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_divisible([int(s) for s in image.shape[2:]], 2**self.num_features, "DiRA U-Net input")
        features = self.encoder(image)
        return self.out_activation(self.segmentation_head(self.decoder(features, self.num_features - 1)))


def dira_unet(
    backbone: str = "resnet50",
    spatial_dims: int = 2,
    in_channels: int = 1,
    out_channels: int = 1,
    width: float = 1.0,
    decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
    out_activation: str | None = "sigmoid",
) -> DiRAUNet:
    """A :class:`DiRAUNet` from settings: the network of ``inference.yaml`` and of transfer code."""
    encoder = ResNetFeatureEncoder(backbone, spatial_dims, in_channels, width)
    decoder = UNetRestorationDecoder(
        encoder.out_channels, spatial_dims, in_channels, out_channels, decoder_channels, out_activation
    )
    return DiRAUNet(encoder, decoder)


def flexible_unet_state_dict(encoder: Mapping[str, torch.Tensor], decoder: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``monai.networks.nets.FlexibleUNet`` state dict from ``encoder.pt`` and ``decoder.pt`` (width 1).

    ``FlexibleUNet(in_channels, out_channels, backbone, decoder_channels=...).load_state_dict(...)`` then loads it
    strictly (the same backbone, decoder channels and ``upsample``).
    """
    return {**{f"encoder.{k}": v for k, v in encoder.items()}, **dict(decoder)}


class ProjectionMLP(nn.Module):
    """Global average pooling, then ``num_layers`` linear layers (BatchNorm and ReLU between): a projector.

    * MoCo v2 (DiRA's default): 2 layers, no normalisation, 2048 -> 2048 -> 128 (:class:`ProjectionHead` is the
      same for ``num_layers=2, batch_norm=False``);
    * Barlow Twins (Zbontar et al., ICML 2021): 3 layers of 8192 with BatchNorm and ReLU between;
    * SimSiam (Chen and He, CVPR 2021): 3 layers of 2048, BatchNorm after every layer, the last without ReLU
      (``last_batch_norm=True``).

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the encoder's last feature map.
        hidden_features: width of the hidden layers.
        out_features: embedding size.
        num_layers: linear layers (>= 1).
        batch_norm: BatchNorm1d after each hidden layer.
        last_batch_norm: BatchNorm1d (without affine parameters) after the last layer, as SimSiam.

    Shapes:
        ``(B, in_channels, *S) -> (B, out_features)``; with batch norm, training needs ``B > 1``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 2048,
        hidden_features: int = 2048,
        out_features: int = 128,
        num_layers: int = 2,
        batch_norm: bool = False,
        last_batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if num_layers < 1 or min(in_channels, hidden_features, out_features) < 1:
            raise ValueError(
                f"need num_layers >= 1 and positive sizes, got {num_layers}, {in_channels}, {hidden_features}, {out_features}."
            )
        self.spatial_dims = spatial_dims
        self.pool = nn.Sequential(Pool[Pool.ADAPTIVEAVG, spatial_dims](1), nn.Flatten(1))
        layers: list[nn.Module] = []
        sizes = [in_channels] + [hidden_features] * (num_layers - 1) + [out_features]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            last = i == num_layers - 1
            layers.append(nn.Linear(a, b, bias=not (last and last_batch_norm)))
            if not last:
                if batch_norm:
                    layers.append(nn.BatchNorm1d(b))
                layers.append(nn.ReLU(inplace=True))
            elif last_batch_norm:
                layers.append(nn.BatchNorm1d(b, affine=False))
        self.mlp = nn.Sequential(*layers)
        self.in_features, self.out_features = in_channels, out_features

    def forward(self, bottleneck: torch.Tensor) -> torch.Tensor:
        if bottleneck.ndim != self.spatial_dims + 2:
            raise ValueError(f"ProjectionMLP expects (B, C, *{self.spatial_dims} spatial dims), got {tuple(bottleneck.shape)}.")
        return self.mlp(self.pool(bottleneck))


class DiRAModel(UnitedModel):
    """The DiRA generator: encoder, projector ``head``, an optional ``predictor`` (SimSiam) and the decoder.

    A :class:`UnitedModel` (stage 1 builds no decoder) whose forward also takes ``decode``: the second view of a
    symmetric two-view task (Barlow Twins, SimSiam) only needs the embedding, so it runs without the decoder.
    The predictor is trainable, so it is part of the model (the optimizer and DistributedDataParallel see it)
    and exported as ``predictor.pt``; ``encoder.pt`` stays a plain :class:`ResNetFeatureEncoder` state dict.

    Args:
        encoder: e.g. :class:`ResNetFeatureEncoder` (returns a list of feature maps, the last the deepest).
        head: the projector, e.g. :class:`ProjectionMLP`.
        decoder: e.g. :class:`UNetRestorationDecoder`, or ``None`` (stage 1).
        predictor: SimSiam's predictor (e.g. :class:`~common.networks.MLP`), or ``None``.

    Shapes:
        ``forward(image (B, C, *S), decode=True)`` returns ``features``, ``head`` ``(B, D)``, ``prediction``
        ``(B, D)`` with a predictor, and ``reconstruction`` ``(B, C_out, *S)`` with a decoder and ``decode``.
    """

    def __init__(
        self, encoder: nn.Module, head: nn.Module, decoder: nn.Module | None = None, predictor: nn.Module | None = None
    ) -> None:
        super().__init__(encoder, head, decoder)
        if head is None:
            raise ValueError("DiRAModel needs a head (the projector of the discriminative task).")
        self.predictor = predictor
        self._register_load_state_dict_pre_hook(self._accept_flexible_unet_keys)

    def _accept_flexible_unet_keys(self, state_dict: dict[str, torch.Tensor], prefix: str, *_: Any) -> None:
        """Read ``model.pt`` (FlexibleUNet keys ``decoder.*``, ``segmentation_head.*``) into this model's decoder.

        MONAI Label starts training from ``model.pt`` with ``CheckpointLoader(load_dict={"model": network},
        strict=False)``; without this the decoder's tensors would be silently skipped and only the encoder loaded.
        """
        if self.decoder is None:
            return
        own = (f"{prefix}decoder.decoder.", f"{prefix}decoder.segmentation_head.")
        for key in list(state_dict):
            if key.startswith(own):
                continue
            if key.startswith(f"{prefix}segmentation_head.") or key.startswith(f"{prefix}decoder."):
                state_dict[f"{prefix}decoder.{key[len(prefix):]}"] = state_dict.pop(key)

    def components(self) -> dict[str, nn.Module]:
        extra = {"predictor": self.predictor} if self.predictor is not None else {}
        return {**super().components(), **extra}

    def restorer(self) -> nn.Module | None:
        """:class:`DiRAUNet` of the encoder and decoder (shared modules): a FlexibleUNet state dict as ``model.pt``."""
        return DiRAUNet(self.encoder, self.decoder) if self.decoder is not None else None

    def forward(self, image: torch.Tensor, decode: bool = True) -> dict[str, Any]:
        features = self.encoder(image)
        out: dict[str, Any] = {"features": features, "head": self.head(features[-1])}
        if self.predictor is not None:
            out["prediction"] = self.predictor(out["head"])
        if self.decoder is not None and decode:
            out["reconstruction"] = self.decoder(features)
        return out


class PatchGANCritic(nn.Module):
    """DiRA's unconditional PatchGAN discriminator: MONAI's :class:`~monai.networks.nets.PatchDiscriminator`.

    Layers (DiRA's ``Discriminator``, CVPR 2022): conv 3x3 stride 2 to ``channels`` (no norm), then stride-2 convs
    doubling the channels with instance norm, a stride-1 conv doubling once more, LeakyReLU 0.2 after each, and
    a final 3x3 conv to one score per patch; weights N(0, 0.02) (MONAI's initialisation). With ``num_layers=3``
    and 64 channels: 64-128-256-512 and a 28x28 score map for a 224x224 input. Why a wrapper: the trainer's
    critics take ``(candidate, condition)`` and return one score map, while ``PatchDiscriminator`` returns every
    intermediate map. The critic is unconditional (it sees only the restoration or the original, never the
    distorted input): a restoration must carry ``condition=None``.

    Args:
        spatial_dims: 2 (DiRA) or 3.
        in_channels: channels of the candidate image.
        channels: width of the first conv (DiRA: 64).
        num_layers: stride-2 convs after the first (DiRA: 3; the last of them has stride 1).
        kernel_size: DiRA: 3.
        norm: MONAI norm spec (DiRA: instance norm).

    Shapes:
        ``(B, in_channels, *S) -> (B, 1, *S / 2 ** num_layers)``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        channels: int = 64,
        num_layers: int = 3,
        kernel_size: int = 3,
        norm: str | tuple = "INSTANCE",
    ) -> None:
        super().__init__()
        if channels < 1 or num_layers < 1:
            raise ValueError(f"need channels >= 1 and num_layers >= 1, got {channels}, {num_layers}.")
        self.discriminator = PatchDiscriminator(
            spatial_dims=spatial_dims,
            channels=channels,
            in_channels=in_channels,
            out_channels=1,
            num_layers_d=num_layers,
            kernel_size=kernel_size,
            norm=norm,
            bias=True,
            padding=(kernel_size - 1) // 2,
        )

    def forward(self, candidate: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        if condition is not None:
            raise ValueError(
                "PatchGANCritic is unconditional (DiRA): it scores the candidate alone, but a condition of shape "
                f"{tuple(condition.shape)} was given; the task must return restorations with condition=None."
            )
        return self.discriminator(candidate)[-1]


#: Paper-scale projector and predictor widths per discriminative method: (hidden, embedding, predictor hidden).
HEAD_DEFAULTS = {"moco": (2048, 128, None), "barlow_twins": (8192, 8192, None), "simsiam": (2048, 2048, 512)}


def _head_defaults(discriminative: str) -> tuple[int, int, int | None]:
    if discriminative not in HEAD_DEFAULTS:
        raise ValueError(f"discriminative must be one of {tuple(HEAD_DEFAULTS)}, got {discriminative!r}.")
    return HEAD_DEFAULTS[discriminative]


def dira_head(
    discriminative: str = "moco",
    spatial_dims: int = 2,
    in_channels: int = 2048,
    hidden_features: int | None = None,
    out_features: int | None = None,
) -> ProjectionMLP:
    """The projector of a discriminative method on the pooled last encoder feature.

    * ``moco``: 2 layers without normalisation, 2048 -> 2048 -> 128 (DiRA's ``--mlp`` head);
    * ``barlow_twins``: 3 layers with BatchNorm and ReLU between, 8192 wide (Zbontar et al., ICML 2021);
    * ``simsiam``: 3 layers of 2048, BatchNorm after each (the last without affine), ReLU between (Chen and He,
      CVPR 2021).

    Args:
        discriminative: ``moco``, ``barlow_twins`` or ``simsiam``.
        spatial_dims: 2 or 3.
        in_channels: channels of the last encoder feature (ResNet-50: 2048).
        hidden_features: hidden width; ``None`` for the method's paper value.
        out_features: embedding size; ``None`` for the method's paper value.
    """
    hidden, out, _ = _head_defaults(discriminative)
    hidden, out = hidden_features or hidden, out_features or out
    if discriminative == "moco":
        return ProjectionMLP(spatial_dims, in_channels, hidden, out, num_layers=2)
    if discriminative == "barlow_twins":
        return ProjectionMLP(spatial_dims, in_channels, hidden, out, num_layers=3, batch_norm=True)
    return ProjectionMLP(spatial_dims, in_channels, hidden, out, num_layers=3, batch_norm=True, last_batch_norm=True)


def dira_predictor(discriminative: str = "moco", features: int | None = None, hidden_features: int | None = None) -> nn.Module | None:
    """SimSiam's predictor (``features -> hidden -> features``, BatchNorm and ReLU in between, 2048 -> 512 -> 2048 at
    paper scale); ``None`` for MoCo v2 and Barlow Twins, which have none.

    Args:
        discriminative: ``moco``, ``barlow_twins`` or ``simsiam``.
        features: the projector's embedding size; ``None`` for the method's paper value.
        hidden_features: the bottleneck width; ``None`` for the method's paper value.
    """
    from common.networks.projection import MLP

    _, out, hidden = _head_defaults(discriminative)
    if hidden is None:
        return None
    return MLP(features or out, hidden_features or hidden, features or out, batch_norm=True)
