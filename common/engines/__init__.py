"""Engines: the stage-aware trainer, its evaluator and the generator objective they share."""

from common.engines.batch import prepare_ssl_batch
from common.engines.objective import UnitedObjective, requires_grad
from common.engines.united_evaluator import UnitedEvaluator
from common.engines.united_trainer import LOSS_KEYS, UnitedTrainer

__all__ = ["LOSS_KEYS", "UnitedEvaluator", "UnitedObjective", "UnitedTrainer", "prepare_ssl_batch", "requires_grad"]
