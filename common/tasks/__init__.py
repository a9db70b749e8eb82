"""Discriminative tasks: one file per task; all share the :class:`DiscriminativeTask` interface."""

from common.tasks.base import DiscriminativeTask, Restoration, TaskOutputs, single_view_outputs
from common.tasks.classification import PretextClassificationTask

__all__ = ["DiscriminativeTask", "PretextClassificationTask", "Restoration", "TaskOutputs", "single_view_outputs"]
