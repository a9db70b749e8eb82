"""Handlers: stage guard and hand-off, crash-safe checkpoints and resume, export, run record, metrics, monitors."""

from common.handlers.component_exporter import MANIFEST, MODEL, TASK, ComponentExporter
from common.handlers.console import EpochLine, setup_logging
from common.handlers.critic_monitor import CriticCollapseError, CriticMonitor
from common.handlers.handler_list import HandlerList
from common.handlers.learning_summary import LearningSummary, StageSummary, format_summaries, stage_summary
from common.handlers.metrics_log import METRICS_LOG, MetricsLog, read_metrics_log
from common.handlers.progress import ProgressBarHandler
from common.handlers.restoration_images import RESTORATIONS, RestorationImages
from common.handlers.run_record import RUN_RECORD, RunRecorder, read_run_record
from common.handlers.stage_checkpoint import (
    FINAL_CHECKPOINT,
    StageCheckpointSaver,
    StageResume,
    checkpoints,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from common.handlers.stage_guard import RESUMABLE_SETTINGS, StageFolderError, StageGuard, data_fingerprint
from common.handlers.stage_handoff import load_component, load_previous_stage

__all__ = [
    "FINAL_CHECKPOINT",
    "MANIFEST",
    "ComponentExporter",
    "CriticCollapseError",
    "EpochLine",
    "RESTORATIONS",
    "RestorationImages",
    "setup_logging",
    "CriticMonitor",
    "RESUMABLE_SETTINGS",
    "StageFolderError",
    "StageGuard",
    "checkpoints",
    "data_fingerprint",
    "load_checkpoint",
    "save_checkpoint",
    "HandlerList",
    "LearningSummary",
    "METRICS_LOG",
    "MODEL",
    "MetricsLog",
    "TASK",
    "ProgressBarHandler",
    "RUN_RECORD",
    "RunRecorder",
    "read_metrics_log",
    "stage_summary",
    "read_run_record",
    "StageCheckpointSaver",
    "StageSummary",
    "StageResume",
    "format_summaries",
    "latest_checkpoint",
    "load_component",
    "load_previous_stage",
]
from common.handlers.reclustering import Reclustering

__all__ += ["Reclustering"]
from common.handlers.last_epoch_validation import LastEpochValidationHandler

__all__ += ["LastEpochValidationHandler"]
