"""Discriminative tasks: one file per task; all share the :class:`DiscriminativeTask` interface."""

from common.tasks.base import DiscriminativeTask
from common.tasks.classification import PretextClassificationTask

__all__ = ["DiscriminativeTask", "PretextClassificationTask"]
