"""MONAI's SwinUNETR split into the United components: ``swinViT`` (encoder) and the skip-connected decoder blocks.

Swin UNETR (Hatamizadeh et al., "Swin UNETR: Swin Transformers for Semantic Segmentation of Brain Tumors in MRI
Images", BrainLes 2021; self-supervised pretraining: Tang et al., "Self-Supervised Pre-Training of Swin
Transformers for 3D Medical Image Analysis", CVPR 2022) is ``monai.networks.nets.SwinUNETR``:

* ``swinViT``: a Swin transformer returning five hidden states (patch embedding, then four stages), the
  discriminative **encoder** of the United framework;
* ``encoder1``-``encoder4``, ``encoder10``, ``decoder5``-``decoder1`` and ``out``: convolutional blocks that
  turn the image and the hidden states into the output, the skip-connected restorative **decoder**.

:func:`swin_vit` builds the encoder alone (stage 1 pays for no decoder block) and :class:`SwinUNETRDecoder` the
decoder blocks, both exactly as ``SwinUNETR.__init__`` builds them, so that ``swinViT.*`` keys of a SwinUNETR
state dict are the encoder's and all other keys the decoder's. :func:`assemble_swin_unetr` puts the two back into
a plain ``SwinUNETR`` (sharing their modules), whose state dict is what fine-tuning code loads.

Why custom: MONAI builds ``swinViT`` and the decoder blocks only together, inside ``SwinUNETR.__init__``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import UnetOutBlock, UnetrBasicBlock, UnetrUpBlock
from monai.networks.nets import SwinUNETR
from monai.networks.nets.swin_unetr import MERGING_MODE, SwinTransformer
from monai.utils import ensure_tuple_rep, look_up_option
from torch import nn

__all__ = ["DECODER_BLOCKS", "SwinUNETRDecoder", "assemble_swin_unetr", "check_swin_input", "swin_vit"]

#: The children of ``SwinUNETR`` that form the restorative decoder, in SwinUNETR's registration order.
DECODER_BLOCKS = (
    "encoder1", "encoder2", "encoder3", "encoder4", "encoder10",
    "decoder5", "decoder4", "decoder3", "decoder2", "decoder1", "out",
)  # fmt: skip


def swin_vit(
    in_channels: int = 1,
    feature_size: int = 48,
    patch_size: int = 2,
    depths: Sequence[int] = (2, 2, 2, 2),
    num_heads: Sequence[int] = (3, 6, 12, 24),
    window_size: Sequence[int] | int = 7,
    qkv_bias: bool = True,
    mlp_ratio: float = 4.0,
    drop_rate: float = 0.0,
    attn_drop_rate: float = 0.0,
    dropout_path_rate: float = 0.0,
    patch_norm: bool = False,
    use_checkpoint: bool = False,
    spatial_dims: int = 3,
    downsample: str = "merging",
    use_v2: bool = False,
) -> SwinTransformer:
    """The ``swinViT`` of ``SwinUNETR(...)`` with the same arguments, built alone.

    Arguments have SwinUNETR's names and defaults (``feature_size`` 48 is the pretraining width of Tang et al.;
    SwinUNETR's own default is 24), so ``encoder.pt`` written from this module loads strictly into
    ``SwinUNETR(<same arguments>).swinViT``.

    Args:
        in_channels: image channels.
        feature_size: embedding width of the first stage (a multiple of 12); the last hidden state has
            ``16 * feature_size`` channels.
        patch_size: patch edge of the embedding (input sizes must be multiples of ``patch_size ** 5``).
        depths: Swin blocks per stage.
        num_heads: attention heads per stage.
        window_size: attention window edge (in tokens).
        qkv_bias, mlp_ratio, drop_rate, attn_drop_rate, dropout_path_rate, patch_norm: as in SwinUNETR.
        use_checkpoint: gradient checkpointing in the Swin blocks (less memory, more compute).
        spatial_dims: 2 or 3.
        downsample: ``"merging"`` (SwinUNETR's default) or ``"mergingv2"``.
        use_v2: SwinUNETR-v2's residual convolution before each stage.

    Shapes:
        ``forward(x (B, in_channels, *S), normalize=True)`` returns five hidden states, the ``i``-th
        ``(B, feature_size * 2**i, *S / 2**(i + 1))``.
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
    if feature_size % 12 != 0:
        raise ValueError(f"feature_size must be a multiple of 12 (SwinUNETR's rule), got {feature_size}.")
    if len(depths) != 4 or len(num_heads) != 4:
        raise ValueError(f"SwinUNETR has four Swin stages: need 4 depths and 4 num_heads, got {depths}, {num_heads}.")
    return SwinTransformer(
        in_chans=in_channels,
        embed_dim=feature_size,
        window_size=ensure_tuple_rep(window_size, spatial_dims),
        patch_size=ensure_tuple_rep(patch_size, spatial_dims),
        depths=depths,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        qkv_bias=qkv_bias,
        drop_rate=drop_rate,
        attn_drop_rate=attn_drop_rate,
        drop_path_rate=dropout_path_rate,
        norm_layer=nn.LayerNorm,
        patch_norm=patch_norm,
        use_checkpoint=use_checkpoint,
        spatial_dims=spatial_dims,
        downsample=look_up_option(downsample, MERGING_MODE),
        use_v2=use_v2,
    )


class SwinUNETRDecoder(nn.Module):
    """The convolutional blocks of ``SwinUNETR``: ``encoder1-4``, ``encoder10``, ``decoder5-1`` and ``out``.

    Built exactly as in ``SwinUNETR.__init__`` (MONAI ``UnetrBasicBlock``, ``UnetrUpBlock``, ``UnetOutBlock``), so
    its state dict keys are those of a SwinUNETR state dict without ``swinViT.*``. It needs the image as well as
    the hidden states: ``encoder1`` is a convolutional skip path at full resolution.

    Args:
        in_channels: image channels.
        out_channels: output channels (1 to restore a 1-channel image; the classes for segmentation).
        feature_size: as for :func:`swin_vit`.
        norm_name: normalisation of the blocks (SwinUNETR: ``"instance"``; instance norm needs more than one
            voxel in the deepest map, so inputs of at least ``2 * patch_size ** 5`` voxels along one axis).
        spatial_dims: 2 or 3.

    Shapes:
        ``forward(image (B, in_channels, *S), hidden_states)`` with the five hidden states of :func:`swin_vit`
        -> ``(B, out_channels, *S)``, without an output activation (SwinUNETR has none).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        feature_size: int = 48,
        norm_name: tuple | str = "instance",
        spatial_dims: int = 3,
    ) -> None:
        super().__init__()
        if feature_size % 12 != 0:
            raise ValueError(f"feature_size must be a multiple of 12 (SwinUNETR's rule), got {feature_size}.")
        self.out_channels = out_channels
        f = feature_size

        def basic(cin: int, cout: int) -> UnetrBasicBlock:
            return UnetrBasicBlock(spatial_dims, cin, cout, kernel_size=3, stride=1, norm_name=norm_name, res_block=True)

        def up(cin: int, cout: int) -> UnetrUpBlock:
            return UnetrUpBlock(
                spatial_dims, cin, cout, kernel_size=3, upsample_kernel_size=2, norm_name=norm_name, res_block=True
            )

        self.encoder1 = basic(in_channels, f)
        self.encoder2 = basic(f, f)
        self.encoder3 = basic(2 * f, 2 * f)
        self.encoder4 = basic(4 * f, 4 * f)
        self.encoder10 = basic(16 * f, 16 * f)
        self.decoder5 = up(16 * f, 8 * f)
        self.decoder4 = up(8 * f, 4 * f)
        self.decoder3 = up(4 * f, 2 * f)
        self.decoder2 = up(2 * f, f)
        self.decoder1 = up(f, f)
        self.out = UnetOutBlock(spatial_dims=spatial_dims, in_channels=f, out_channels=out_channels)

    def forward(self, image: torch.Tensor, hidden_states: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(hidden_states) != 5:
            raise ValueError(f"SwinUNETRDecoder needs the 5 hidden states of swinViT, got {len(hidden_states)}.")
        enc0 = self.encoder1(image)
        enc1 = self.encoder2(hidden_states[0])
        enc2 = self.encoder3(hidden_states[1])
        enc3 = self.encoder4(hidden_states[2])
        dec4 = self.encoder10(hidden_states[4])
        dec3 = self.decoder5(dec4, hidden_states[3])
        dec2 = self.decoder4(dec3, enc3)
        dec1 = self.decoder3(dec2, enc2)
        dec0 = self.decoder2(dec1, enc1)
        return self.out(self.decoder1(dec0, enc0))


def check_swin_input(spatial_shape: Sequence[int], patch_size: int, decoder: bool) -> None:
    """Raise a clear error for an input size SwinUNETR cannot take.

    Every spatial size must be a multiple of ``patch_size ** 5`` (four patch mergings after the embedding), and with
    the decoder the deepest map must hold more than one voxel (its instance norm fails otherwise in training), e.g.
    64x32x32 is the smallest 3D input with the default patch size 2, and 32^3 fails.

    Args:
        spatial_shape: the input's spatial shape.
        patch_size: the embedding's patch edge.
        decoder: whether the decoder runs on this input.
    """
    step = patch_size**5
    shape = tuple(int(s) for s in spatial_shape)
    if any(s % step for s in shape):
        raise ValueError(
            f"SwinUNETR input of spatial shape {shape}: every size must be a multiple of patch_size ** 5 = {step} "
            "(check roi_size)."
        )
    if decoder and all(s == step for s in shape):
        raise ValueError(
            f"SwinUNETR input of spatial shape {shape}: the deepest map is 1 voxel, on which the decoder's instance "
            f"norm fails in training; make one size at least {2 * step} (check roi_size, e.g. [{2 * step}, {step}, {step}])."
        )


def assemble_swin_unetr(encoder: SwinTransformer, decoder: SwinUNETRDecoder, normalize: bool = True) -> SwinUNETR:
    """A plain ``monai.networks.nets.SwinUNETR`` made of ``encoder`` (as ``swinViT``) and ``decoder``'s blocks.

    The modules are shared, not copied: training the parts trains the assembled network. SwinUNETR's own
    constructor builds a minimal shell (so every attribute its ``forward`` reads exists), whose children are
    then all replaced; its state dict is exactly that of ``SwinUNETR(<the parts' arguments>)``.

    Args:
        encoder: from :func:`swin_vit`.
        decoder: a :class:`SwinUNETRDecoder` of the same width.
        normalize: SwinUNETR's ``normalize`` (layer-normalise the hidden states).

    Raises:
        RuntimeError: MONAI's SwinUNETR has children other than ``swinViT`` and :data:`DECODER_BLOCKS` (a MONAI
            version this code does not know).
    """
    patch_sizes = set(encoder.patch_size)
    if len(patch_sizes) != 1:
        raise ValueError(f"SwinUNETR needs one patch edge for all axes, the encoder has {tuple(encoder.patch_size)}.")
    spatial_dims = len(encoder.patch_size)
    shell = SwinUNETR(
        in_channels=1,
        out_channels=1,
        patch_size=patch_sizes.pop(),
        depths=(1, 1, 1, 1),
        num_heads=(1, 1, 1, 1),
        window_size=1,
        feature_size=12,
        normalize=normalize,
        spatial_dims=spatial_dims,
    )
    children = {name for name, _ in shell.named_children()}
    if children != {"swinViT", *DECODER_BLOCKS} or any(True for _ in shell.parameters(recurse=False)):
        raise RuntimeError(
            f"this MONAI SwinUNETR has children {sorted(children)}; common.networks.swin knows swinViT and "
            f"{list(DECODER_BLOCKS)} only."
        )
    shell.swinViT = encoder
    for name in DECODER_BLOCKS:
        setattr(shell, name, getattr(decoder, name))
    shell.training = encoder.training  # the shell's own flag only: the shared modules keep their modes
    return shell
