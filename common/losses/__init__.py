"""Losses: the combined United loss and the adversarial losses."""

from common.losses.adversarial import AdversarialLoss, LeastSquaresGANLoss, WassersteinGPLoss, gradient_penalty
from common.losses.united_loss import TERMS, UnitedLoss

__all__ = ["TERMS", "AdversarialLoss", "LeastSquaresGANLoss", "UnitedLoss", "WassersteinGPLoss", "gradient_penalty"]
