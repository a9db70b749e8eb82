"""Discriminative tasks: one file per task; all share the :class:`DiscriminativeTask` interface."""

from common.tasks.base import DiscriminativeTask, Restoration, TaskOutputs, single_view_outputs
from common.tasks.classification import PretextClassificationTask
from common.tasks.swin_pretext import SwinPretextTask
from common.tasks.byol import BYOLTask
from common.tasks.moco import MoCoTask
from common.tasks.momentum import cosine_schedule, momentum_copy, update_momentum, update_momentum_copy
from common.tasks.pcrl import PCRLTask
from common.tasks.queue import FeatureQueue
from common.tasks.retrieval import top1_retrieval
from common.tasks.shuffle_bn import grouped_shuffle_forward

__all__ = ["DiscriminativeTask", "PretextClassificationTask", "Restoration", "TaskOutputs", "single_view_outputs"]
__all__ += ["SwinPretextTask"]
__all__ += ["BYOLTask", "FeatureQueue", "MoCoTask", "PCRLTask", "cosine_schedule", "grouped_shuffle_forward"]
__all__ += ["momentum_copy", "top1_retrieval", "update_momentum", "update_momentum_copy"]
from common.tasks.deep_cluster import DeepClusterTask
from common.tasks.rubiks_cube import RubiksCubeTask

__all__ += ["DeepClusterTask", "RubiksCubeTask"]
