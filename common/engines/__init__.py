"""Engines: the stage-aware trainer, its evaluator, the objective they share, and distributed helpers."""

from common.engines.batch import prepare_ssl_batch
from common.engines.distributed import all_gather, destroy_distributed, init_distributed, rank, unwrap, world_size
from common.engines.iteration_output import IterationOutput
from common.engines.objective import UnitedObjective, requires_grad
from common.engines.output_means import OutputMeans
from common.engines.united_evaluator import UnitedEvaluator
from common.engines.united_trainer import NonFiniteLossError, UnitedEvents, UnitedTrainer, frozen_components

__all__ = [
    "IterationOutput",
    "OutputMeans",
    "all_gather",
    "UnitedEvaluator",
    "UnitedObjective",
    "NonFiniteLossError",
    "UnitedEvents",
    "UnitedTrainer",
    "destroy_distributed",
    "frozen_components",
    "init_distributed",
    "prepare_ssl_batch",
    "rank",
    "requires_grad",
    "unwrap",
    "world_size",
]
