"""Losses: the combined United loss and the adversarial losses."""

from common.losses.adversarial import AdversarialLoss, LeastSquaresGANLoss, WassersteinGPLoss, gradient_penalty
from common.losses.united_loss import TERMS, UnitedLoss, needs_adversary, needs_decoder

__all__ = [
    "TERMS",
    "AdversarialLoss",
    "LeastSquaresGANLoss",
    "UnitedLoss",
    "WassersteinGPLoss",
    "gradient_penalty",
    "needs_adversary",
    "needs_decoder",
]
