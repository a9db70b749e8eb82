"""Losses: the combined United loss and the adversarial losses."""

from common.losses.adversarial import AdversarialLoss, LeastSquaresGANLoss, WassersteinGPLoss, gradient_penalty
from common.losses.united_loss import TERMS, UnitedLoss, needs_adversary, needs_decoder
from common.losses.byol import BYOLLoss
from common.losses.contrastive import InfoNCELoss, NTXentLoss
from common.losses.nce import NCELoss

__all__ = [
    "TERMS",
    "AdversarialLoss",
    "LeastSquaresGANLoss",
    "UnitedLoss",
    "WassersteinGPLoss",
    "gradient_penalty",
    "BYOLLoss",
    "InfoNCELoss",
    "NCELoss",
    "NTXentLoss",
    "needs_adversary",
    "needs_decoder",
]
