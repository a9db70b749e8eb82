"""Networks: the Genesis U-Net encoder and decoder, heads, the adversary critic and the United model."""

from common.networks.adversary import ConditionalPatchCritic
from common.networks.decoder import GenesisDecoder
from common.networks.encoder import GenesisEncoder
from common.networks.freeze import freeze
from common.networks.heads import ClassificationHead
from common.networks.restorer import Restorer
from common.networks.swin import SwinUNETRDecoder, assemble_swin_unetr, swin_vit
from common.networks.swin_head import SwinPretextHead
from common.networks.swin_model import SwinUnitedModel
from common.networks.united_model import UnitedModel
from common.networks.byol import BYOLModel
from common.networks.pcrl import AugmentationEmbedding, PCRLModel, PCRLRestorer, condition_features
from common.networks.projection import MLP, ProjectionHead

__all__ = [
    "ClassificationHead",
    "ConditionalPatchCritic",
    "GenesisDecoder",
    "GenesisEncoder",
    "Restorer",
    "SwinPretextHead",
    "SwinUNETRDecoder",
    "SwinUnitedModel",
    "UnitedModel",
    "assemble_swin_unetr",
    "freeze",
    "swin_vit",
    "AugmentationEmbedding",
    "BYOLModel",
    "MLP",
    "PCRLModel",
    "PCRLRestorer",
    "ProjectionHead",
    "condition_features",
]
from common.networks.siamese_octad import OctadHead, SiameseOctadModel

__all__ += ["OctadHead", "SiameseOctadModel"]
